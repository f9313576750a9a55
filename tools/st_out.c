/* Streaming, atomic safetensors output. */
#define _POSIX_C_SOURCE 200809L
#define QFMT_STATIC_LINKING_ONLY /* the I/O table, kernels, UTF-8 check (qfmt.h) */
#include "st_out.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct st_out {
    int fd;
    char *path, *tmp;
    uint64_t expected, written;
};

const char *st_out_dtype(uint32_t t)
{
    switch (t) {
    case QFMT_TYPE_F32: return "F32";
    case QFMT_TYPE_F16: return "F16";
    case QFMT_TYPE_BF16: return "BF16";
    case QFMT_TYPE_F64: return "F64";
    case QFMT_TYPE_I8: return "I8";
    case QFMT_TYPE_I16: return "I16";
    case QFMT_TYPE_I32: return "I32";
    case QFMT_TYPE_I64: return "I64";
    case QFMT_TYPE_U8: return "U8";
    case QFMT_TYPE_BOOL: return "BOOL";
    default: return NULL;
    }
}

static int write_all(st_out *o, const void *p, size_t n)
{
    size_t done = 0;
    int e = qfmt__write_all(&qfmt__io_posix, o->fd, p, n, &done);
    if (e) {
        cli_error("%s: write failed: %s", o->tmp, strerror(e));
        return -1;
    }
    return 0;
}

/* The JSON header; *total gets the data bytes. NULL on OOM or an unwritable type. */
static char *header(const st_out_tensor *t, size_t n, uint64_t *total)
{
    cJSON *hdr = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    bool ok = hdr && meta && cJSON_AddStringToObject(meta, "format", "pt") && cJSON_AddItemToObject(hdr, "__metadata__", meta);
    if (!ok) cJSON_Delete(meta);
    uint64_t at = 0;
    bool type_error = false;
    for (size_t i = 0; ok && i < n; i++) {
        uint64_t nel = 1, size;
        for (uint32_t d = 0; d < t[i].ndim; d++) nel *= t[i].dims[d];
        const char *dt = st_out_dtype(t[i].type);
        if (!dt || qfmt_type_size(t[i].type, nel, &size) != QFMT_OK) {
            cli_error("tensor '%s': its type cannot be written to safetensors", t[i].name);
            type_error = true;
            ok = false;
            break;
        }
        cJSON *e = cJSON_CreateObject(), *shape = cJSON_CreateArray(), *offs = cJSON_CreateArray();
        ok = e && shape && offs && cJSON_AddStringToObject(e, "dtype", dt);
        for (uint32_t d = 0; ok && d < t[i].ndim; d++) ok = cli_json_add(shape, NULL, cli_json_u64(t[i].dims[d]));
        ok = ok && cli_json_add(offs, NULL, cli_json_u64(at)) && cli_json_add(offs, NULL, cli_json_u64(at + size));
        if (ok && cJSON_AddItemToObject(e, "shape", shape)) shape = NULL;
        else ok = false;
        if (ok && cJSON_AddItemToObject(e, "data_offsets", offs)) offs = NULL;
        else ok = false;
        if (ok && cJSON_AddItemToObject(hdr, t[i].name, e)) e = NULL;
        else ok = false;
        cJSON_Delete(shape);
        cJSON_Delete(offs);
        cJSON_Delete(e);
        at += size;
    }
    char *json = ok ? cJSON_PrintUnformatted(hdr) : NULL;
    cJSON_Delete(hdr);
    if (!json && !type_error) cli_error("out of memory building the safetensors header");
    *total = at;
    return json;
}

int st_out_begin(st_out **out, const char *path, const st_out_tensor *t, size_t n)
{
    *out = NULL;
    uint64_t total = 0;
    char *json = header(t, n, &total);
    st_out *o = calloc(1, sizeof *o);
    size_t pl = strlen(path);
    size_t tmp_cap = pl + 16;
    if (!json || !o || !(o->path = strdup(path)) || !(o->tmp = malloc(tmp_cap))) {
        if (json && o) cli_error("out of memory");
        cJSON_free(json);
        if (o) free(o->path);
        free(o);
        return -1;
    }
    o->fd = -1;
    o->expected = total;
    /* a fresh name, created exclusively: never follows a link planted under a guessable name */
    o->fd = qfmt__create_temp(&qfmt__io_posix, path, o->tmp, tmp_cap, (uint64_t)(uintptr_t)o);
    if (o->fd < 0) {
        cli_error("%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        cJSON_free(json);
        free(o->tmp);
        free(o->path);
        free(o);
        return -1;
    }
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7; /* data starts 8-aligned */
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)padded >> (8 * k));
    int rc = write_all(o, len8, 8);
    rc = rc ? rc : write_all(o, json, jl);
    for (size_t k = jl; rc == 0 && k < padded; k++) rc = write_all(o, " ", 1);
    cJSON_free(json);
    if (rc) {
        st_out_abort(o);
        return -1;
    }
    *out = o;
    return 0;
}

int st_out_write(st_out *o, const void *p, size_t n)
{
    if (n > o->expected - o->written) {
        cli_error("%s: more data than the header describes", o->path);
        return -1;
    }
    o->written += n;
    return write_all(o, p, n);
}

int st_out_commit(st_out *o)
{
    int rc = 0;
    if (o->written != o->expected) {
        cli_error("%s: %llu of %llu data bytes written", o->path, (unsigned long long)o->written,
                  (unsigned long long)o->expected);
        rc = -1;
    }
    int e;
    if (rc == 0 && (e = qfmt__fsync(&qfmt__io_posix, o->fd)) != 0) {
        cli_error("%s: fsync failed: %s", o->tmp, strerror(e));
        rc = -1;
    }
    int fd = o->fd;
    o->fd = -1;
    if (close(fd) != 0 && rc == 0) {
        cli_error("%s: close failed: %s", o->tmp, strerror(errno));
        rc = -1;
    }
    if (rc == 0 && rename(o->tmp, o->path) != 0) {
        cli_error("%s: cannot rename into place: %s", o->path, strerror(errno));
        rc = -1;
    }
    if (rc) {
        unlink(o->tmp);
    } else if ((e = qfmt__fsync_parent(&qfmt__io_posix, o->path)) != 0) { /* makes the rename durable */
        cli_error("%s: written, but syncing its directory failed: %s", o->path, strerror(e));
        rc = -1;
    }
    free(o->tmp);
    free(o->path);
    free(o);
    return rc;
}

void st_out_abort(st_out *o)
{
    if (!o) return;
    if (o->fd >= 0) close(o->fd);
    unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    free(o);
}
