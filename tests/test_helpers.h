/*
 * test_helpers.h - header-only helpers shared by the Criterion tests (every tests/test_*.c is its
 * own executable, so everything here is `static inline`).
 *
 * Include this first in each test file: it sets the feature macros before any system header.
 *
 * Holds: a PRNG, little-endian byte access, scratch directories, a parser of the on-disk layout
 * (spec/qfmt_format.md) used to patch files at exact byte offsets and recompute their checksums,
 * an independent file builder that writes the layout by hand, the small sample file the
 * corruption and allocation tests start from, and counting / failing allocators.
 */
#ifndef QFMT_TEST_HELPERS_H
#define QFMT_TEST_HELPERS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <criterion/criterion.h>

#include "qfmt.h"

/* ---- PRNG (splitmix64: deterministic, seedable) ------------------------------------------ */
static inline uint64_t th_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void th_fill_random(void *p, size_t n, uint64_t seed) {
    uint8_t *b = p;
    uint64_t st = seed, r = 0;
    for (size_t i = 0; i < n; i++) {
        if ((i & 7) == 0) r = th_rand(&st);
        b[i] = (uint8_t)(r >> (8 * (i & 7)));
    }
}

/* Compressible bytes: a short repeating pattern with a few seeded variations. */
static inline void th_fill_compressible(void *p, size_t n, uint64_t seed) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)((i / 16) % 4 + (seed & 3));
}

/* ---- Little-endian access ---------------------------------------------------------------- */
static inline uint16_t th_get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t th_get32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t th_get64(const uint8_t *p) {
    return (uint64_t)th_get32(p) | ((uint64_t)th_get32(p + 4) << 32);
}
static inline void th_put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void th_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void th_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t th_xxh3(const void *p, size_t n) { return (uint64_t)XXH3_64bits(p, n); }
static inline uint64_t th_align_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }

/* ---- Files and scratch directories ------------------------------------------------------- */
static inline void th_rmtree(const char *dir);

/* Scratch directories of this process, removed at exit too, so that a test stopped by a failed
 * assertion leaves nothing in /tmp. (Forked children leave with _exit and do not run this.) */
#define TH_MAX_DIRS 16
static char th_dirs[TH_MAX_DIRS][64];
static int th_ndirs;

static inline void th_cleanup_dirs(void) {
    for (int i = 0; i < th_ndirs; i++) th_rmtree(th_dirs[i]);
    th_ndirs = 0;
}

/* Creates /tmp/qfmt_test_XXXXXX; dir must hold PATH_MAX bytes. */
static inline void th_mkdtemp(char *dir) {
    strcpy(dir, "/tmp/qfmt_test_XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    if (th_ndirs == 0) atexit(th_cleanup_dirs);
    if (th_ndirs < TH_MAX_DIRS) strcpy(th_dirs[th_ndirs++], dir);
}

/* Removes every entry of dir (one level: the tests create no subdirectories) and dir itself. */
static inline void th_rmtree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[PATH_MAX + 512];
        while ((de = readdir(d)) != NULL) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (unlink(p) != 0) rmdir(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Number of entries in dir other than . and ..; if `first` is given, copies one name to it. */
static inline int th_count_entries(const char *dir, char *first, size_t first_size) {
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (first && n == 0) snprintf(first, first_size, "%s", de->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static inline bool th_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static inline uint8_t *th_read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

static inline void th_write_file(const char *path, const void *data, size_t size) {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
}

static inline uint8_t *th_dup(const void *p, size_t n) {
    uint8_t *b = malloc(n ? n : 1);
    cr_assert_not_null(b);
    if (n) memcpy(b, p, n);
    return b;
}

/* ---- Parsing the on-disk layout (valid files only; bounds-checked anyway) ---------------- */
typedef struct {
    uint64_t entry_off, entry_end; /* the directory entry's bytes */
    uint64_t name_off, name_len;
    uint64_t type_off, codec_off, ndim_off, reserved_off, dims_off;
    uint64_t offset_off, stored_off, raw_off, checksum_off; /* positions of these fields */
    uint32_t type, codec, ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t offset, stored, raw, checksum;
    char name[QFMT_MAX_NAME_LEN + 1];
} th_dirent;

typedef struct {
    uint64_t entry_off, entry_end;
    uint64_t key_off, key_len;
    uint64_t vtype_off, vsize_off, value_off;
    uint32_t vtype;
    uint64_t vsize;
    char key[QFMT_MAX_KEY_LEN + 1];
} th_metaent;

typedef struct {
    uint64_t size;
    uint32_t alignment;
    uint64_t meta_off, meta_size, dir_off, dir_size, meta_count, tensor_count;
    th_dirent *t;   /* tensor_count entries */
    th_metaent *m;  /* meta_count entries */
} th_layout;

/* Parses buf; asserts the file is well formed enough to be patched. */
static inline void th_parse(const uint8_t *buf, size_t size, th_layout *L) {
    memset(L, 0, sizeof *L);
    cr_assert_geq(size, 128u, "file too small to parse");
    L->size = size;
    L->alignment = th_get32(buf + 20);
    const uint8_t *f = buf + size - 64;
    L->meta_off = th_get64(f);
    L->meta_size = th_get64(f + 8);
    L->dir_size = th_get64(f + 16);
    L->meta_count = th_get64(f + 24);
    L->tensor_count = th_get64(f + 32);
    L->dir_off = L->meta_off + L->meta_size;
    cr_assert_eq(L->dir_off + L->dir_size + 64, size, "layout equation of the footer");
    cr_assert_lt(L->tensor_count, 1000000u);
    cr_assert_lt(L->meta_count, 1000000u);
    L->t = calloc(L->tensor_count ? L->tensor_count : 1, sizeof *L->t);
    L->m = calloc(L->meta_count ? L->meta_count : 1, sizeof *L->m);
    cr_assert(L->t && L->m);

    uint64_t p = L->meta_off, end = L->dir_off;
    for (uint64_t i = 0; i < L->meta_count; i++) {
        th_metaent *m = &L->m[i];
        m->entry_off = p;
        cr_assert_leq(p + 8, end);
        m->key_len = th_get64(buf + p);
        cr_assert_leq(m->key_len, QFMT_MAX_KEY_LEN);
        m->key_off = p + 8;
        memcpy(m->key, buf + m->key_off, m->key_len);
        m->key[m->key_len] = 0;
        m->vtype_off = m->key_off + m->key_len;
        m->vsize_off = m->vtype_off + 4;
        m->value_off = m->vsize_off + 8;
        cr_assert_leq(m->value_off, end);
        m->vtype = th_get32(buf + m->vtype_off);
        m->vsize = th_get64(buf + m->vsize_off);
        cr_assert_leq(m->vsize, end - m->value_off);
        p = m->entry_end = m->value_off + m->vsize;
    }
    cr_assert_eq(p, end, "metadata entries fill the section");

    p = L->dir_off;
    end = size - 64;
    for (uint64_t i = 0; i < L->tensor_count; i++) {
        th_dirent *t = &L->t[i];
        t->entry_off = p;
        cr_assert_leq(p + 8, end);
        t->name_len = th_get64(buf + p);
        cr_assert_leq(t->name_len, QFMT_MAX_NAME_LEN);
        t->name_off = p + 8;
        cr_assert_leq(t->name_off + t->name_len + 16, end);
        memcpy(t->name, buf + t->name_off, t->name_len);
        t->name[t->name_len] = 0;
        t->type_off = t->name_off + t->name_len;
        t->codec_off = t->type_off + 4;
        t->ndim_off = t->codec_off + 4;
        t->reserved_off = t->ndim_off + 4;
        t->dims_off = t->reserved_off + 4;
        t->type = th_get32(buf + t->type_off);
        t->codec = th_get32(buf + t->codec_off);
        t->ndim = th_get32(buf + t->ndim_off);
        cr_assert_leq(t->ndim, QFMT_MAX_DIMS);
        cr_assert_leq(t->dims_off + 8ull * t->ndim + 32, end);
        for (uint32_t d = 0; d < t->ndim; d++) t->dims[d] = th_get64(buf + t->dims_off + 8ull * d);
        t->offset_off = t->dims_off + 8ull * t->ndim;
        t->stored_off = t->offset_off + 8;
        t->raw_off = t->stored_off + 8;
        t->checksum_off = t->raw_off + 8;
        t->offset = th_get64(buf + t->offset_off);
        t->stored = th_get64(buf + t->stored_off);
        t->raw = th_get64(buf + t->raw_off);
        t->checksum = th_get64(buf + t->checksum_off);
        p = t->entry_end = t->checksum_off + 8;
    }
    cr_assert_eq(p, end, "directory entries fill the section");
}

static inline void th_layout_free(th_layout *L) {
    free(L->t);
    free(L->m);
    L->t = NULL;
    L->m = NULL;
}

static inline const th_dirent *th_find_tensor(const th_layout *L, const char *name) {
    for (uint64_t i = 0; i < L->tensor_count; i++)
        if (!strcmp(L->t[i].name, name)) return &L->t[i];
    cr_assert_fail("tensor '%s' not in the parsed file", name);
    return NULL;
}

static inline const th_metaent *th_find_meta(const th_layout *L, const char *key) {
    for (uint64_t i = 0; i < L->meta_count; i++)
        if (!strcmp(L->m[i].key, key)) return &L->m[i];
    cr_assert_fail("key '%s' not in the parsed file", key);
    return NULL;
}

/* Recompute the checksums after patching bytes, so the check under test is the one that fires. */
static inline void th_fix_header(uint8_t *buf) { th_put64(buf + 56, th_xxh3(buf, 56)); }
static inline void th_fix_index(uint8_t *buf, size_t size) {
    uint64_t mo = th_get64(buf + size - 64);
    th_put64(buf + size - 16, th_xxh3(buf + mo, size - 16 - mo));
}
static inline void th_fix_tensor(uint8_t *buf, size_t size, const th_dirent *t) {
    th_put64(buf + t->checksum_off, th_xxh3(buf + t->offset, t->stored));
    th_fix_index(buf, size);
}

/* ---- Independent builder: writes the layout by hand, per spec ---------------------------- */
typedef struct {
    const char *name;
    size_t name_len;    /* 0: strlen(name) */
    uint32_t type, codec, ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    const void *stored; /* stored bytes */
    uint64_t stored_size;
    uint64_t raw_size;
} th_btensor;

typedef struct {
    const char *key;
    size_t key_len;     /* 0: strlen(key) */
    uint32_t vtype;
    const void *value;  /* the Value bytes, as on disk */
    uint64_t value_size;
} th_bmeta;

/* Builds a complete file with correct checksums; entries are written in the order given. */
static inline uint8_t *th_build(uint32_t align, const th_bmeta *m, size_t nm, const th_btensor *t,
                                size_t nt, size_t *out_size) {
    uint64_t off = 64, data_end;
    uint64_t *offs = calloc(nt ? nt : 1, sizeof *offs);
    cr_assert_not_null(offs);
    for (size_t i = 0; i < nt; i++) {
        offs[i] = th_align_up(off, align);
        off = offs[i] + t[i].stored_size;
    }
    data_end = th_align_up(off, align);
    uint64_t msize = 0, dsize = 0;
    for (size_t i = 0; i < nm; i++)
        msize += 8 + (m[i].key_len ? m[i].key_len : strlen(m[i].key)) + 4 + 8 + m[i].value_size;
    for (size_t i = 0; i < nt; i++)
        dsize += 8 + (t[i].name_len ? t[i].name_len : strlen(t[i].name)) + 16 + 8ull * t[i].ndim + 32;
    size_t size = (size_t)(data_end + msize + dsize + 64);
    uint8_t *b = calloc(size, 1);
    cr_assert_not_null(b);
    memcpy(b, "QFMT\r\n\x1a\n", 8);
    th_put16(b + 8, 1);
    th_put16(b + 10, 0);
    th_put32(b + 20, align);
    th_fix_header(b);
    for (size_t i = 0; i < nt; i++)
        if (t[i].stored_size) memcpy(b + offs[i], t[i].stored, t[i].stored_size);
    uint64_t p = data_end;
    for (size_t i = 0; i < nm; i++) {
        size_t kl = m[i].key_len ? m[i].key_len : strlen(m[i].key);
        th_put64(b + p, kl);
        memcpy(b + p + 8, m[i].key, kl);
        p += 8 + kl;
        th_put32(b + p, m[i].vtype);
        th_put64(b + p + 4, m[i].value_size);
        p += 12;
        if (m[i].value_size) memcpy(b + p, m[i].value, m[i].value_size);
        p += m[i].value_size;
    }
    for (size_t i = 0; i < nt; i++) {
        size_t nl = t[i].name_len ? t[i].name_len : strlen(t[i].name);
        th_put64(b + p, nl);
        memcpy(b + p + 8, t[i].name, nl);
        p += 8 + nl;
        th_put32(b + p, t[i].type);
        th_put32(b + p + 4, t[i].codec);
        th_put32(b + p + 8, t[i].ndim);
        th_put32(b + p + 12, 0);
        p += 16;
        for (uint32_t d = 0; d < t[i].ndim; d++, p += 8) th_put64(b + p, t[i].dims[d]);
        th_put64(b + p, offs[i]);
        th_put64(b + p + 8, t[i].stored_size);
        th_put64(b + p + 16, t[i].raw_size);
        th_put64(b + p + 24, th_xxh3(b + offs[i], t[i].stored_size));
        p += 32;
    }
    cr_assert_eq(p, size - 64);
    th_put64(b + p, data_end);
    th_put64(b + p + 8, msize);
    th_put64(b + p + 16, dsize);
    th_put64(b + p + 24, nm);
    th_put64(b + p + 32, nt);
    memcpy(b + p + 56, "QFMT_END", 8);
    th_fix_index(b, size);
    free(offs);
    *out_size = size;
    return b;
}

/* A zstd frame (RFC 8878) made of raw blocks: declares `fcs` as Frame_Content_Size (or none if
 * fcs == UINT64_MAX) and carries `n` bytes of `data`. Returns the frame size written to out. */
static inline size_t th_zstd_raw_frame(uint8_t *out, uint64_t fcs, const void *data, size_t n) {
    size_t p = 0;
    th_put32(out, 0xFD2FB528u);
    p = 4;
    if (fcs == UINT64_MAX) {
        out[p++] = 0x00;  /* FCS flag 0, not single segment, no checksum, no dict */
        out[p++] = 0x58;  /* window descriptor: 2^(10+11) = 2 MiB window */
    } else if (fcs < 256) {
        out[p++] = 0x20;  /* single segment, 1-byte FCS */
        out[p++] = (uint8_t)fcs;
    } else if (fcs < 65536 + 256) {
        out[p++] = 0x60;  /* single segment, 2-byte FCS (value - 256) */
        th_put16(out + p, (uint16_t)(fcs - 256));
        p += 2;
    } else {
        out[p++] = 0xA0;  /* single segment, 4-byte FCS */
        th_put32(out + p, (uint32_t)fcs);
        p += 4;
    }
    const uint8_t *d = data;
    size_t left = n;
    do {
        size_t bs = left > 100000 ? 100000 : left;
        uint32_t hdr = (uint32_t)(bs << 3) | (left == bs ? 1u : 0u); /* raw block */
        out[p] = (uint8_t)hdr;
        out[p + 1] = (uint8_t)(hdr >> 8);
        out[p + 2] = (uint8_t)(hdr >> 16);
        p += 3;
        if (bs) memcpy(out + p, d, bs);
        p += bs;
        d += bs;
        left -= bs;
    } while (left);
    return p;
}

/* ---- Writing through the library --------------------------------------------------------- */
#define TH_OK(call)                                                                              \
    do {                                                                                         \
        qfmt_error th_e_;                                                                        \
        memset(&th_e_, 0, sizeof th_e_);                                                         \
        qfmt_status th_s_ = (call);                                                              \
        (void)th_e_;                                                                             \
        cr_assert_eq(th_s_, QFMT_OK, "%s -> %d (%s)", #call, (int)th_s_, qfmt_strerror(th_s_));  \
    } while (0)

/* Like TH_OK for calls taking `&e` as their error argument: prints the message too. */
#define TH_OKE(call, e)                                                                          \
    do {                                                                                         \
        memset(&(e), 0, sizeof(e));                                                              \
        qfmt_status th_s_ = (call);                                                              \
        cr_assert_eq(th_s_, QFMT_OK, "%s -> %d (%s): %s", #call, (int)th_s_,                     \
                     qfmt_strerror(th_s_), (e).message);                                         \
    } while (0)

static inline qfmt_tensor_desc th_desc(const char *name, uint32_t type, uint32_t codec,
                                       uint32_t ndim, const uint64_t *dims) {
    qfmt_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.name = name;
    d.type = type;
    d.codec = codec;
    d.ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++) d.dims[i] = dims[i];
    return d;
}

/* The small sample file (< 2 KB): 5 tensors (one zstd, one scalar, one empty), 5 metadata
 * entries. Written with the given options; returns the first failing status. */
static inline qfmt_status th_write_sample_opts(const char *path, const qfmt_write_opts *opts,
                                               qfmt_error *e) {
    qfmt_writer *w = NULL;
    qfmt_status s = qfmt_writer_create(&w, path, opts, e);
    if (s != QFMT_OK) return s;
    float a[6] = {1.0f, -2.5f, 3.25f, 0.0f, -0.0f, 1e-3f};
    uint16_t b[4] = {0x3C00, 0xC000, 0x7BFF, 0x0001};
    uint8_t z[256];
    for (int i = 0; i < 256; i++) z[i] = (uint8_t)(i % 4);
    int32_t sc = 42;
    int16_t list[3] = {1, -2, 3};
    const char *toks[2] = {"a", "bc"};
    qfmt_tensor_desc d;
    uint64_t da[2] = {2, 3}, db[1] = {4}, dz[1] = {256}, de[2] = {0, 4};
    if ((s = qfmt_writer_set_string(w, "general.name", "sample model", 12, e))) goto out;
    d = th_desc("a", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, da);
    if ((s = qfmt_writer_add_tensor(w, &d, a, sizeof a, e))) goto out;
    if ((s = qfmt_writer_set_u32(w, "sample.count", 7, e))) goto out;
    d = th_desc("b", QFMT_TYPE_F16, QFMT_CODEC_NONE, 1, db);
    if ((s = qfmt_writer_add_tensor(w, &d, b, sizeof b, e))) goto out;
    d = th_desc("z", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dz);
    if ((s = qfmt_writer_add_tensor(w, &d, z, sizeof z, e))) goto out;
    if ((s = qfmt_writer_set_array(w, "sample.list", QFMT_META_I16, list, 3, e))) goto out;
    if ((s = qfmt_writer_set_f32(w, "sample.scale", 0.5f, e))) goto out;
    if ((s = qfmt_writer_set_string_array(w, "sample.tokens", toks, NULL, 2, e))) goto out;
    d = th_desc("s", QFMT_TYPE_I32, QFMT_CODEC_NONE, 0, NULL);
    if ((s = qfmt_writer_add_tensor(w, &d, &sc, sizeof sc, e))) goto out;
    d = th_desc("e", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, de);
    if ((s = qfmt_writer_add_tensor(w, &d, a, 0, e))) goto out;
    s = qfmt_writer_finish(w, e);
out:
    qfmt_writer_free(w);
    return s;
}

static inline uint8_t *th_sample_bytes(size_t *size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/sample.qfmt", dir);
    qfmt_write_opts wo = {0};
    wo.alignment = 32;
    wo.no_fsync = true;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = th_write_sample_opts(path, &wo, &e);
    cr_assert_eq(s, QFMT_OK, "writing the sample: %d %s", (int)s, e.message);
    uint8_t *b = th_read_file(path, size);
    th_rmtree(dir);
    return b;
}

/* ---- Allocators -------------------------------------------------------------------------- */
/* Counts live allocations; can fail the n-th allocation (once, or from n on), and records the
 * largest request. Blocks carry a 16-byte header so frees of foreign pointers are caught. */
typedef struct {
    long live;          /* allocations not yet freed */
    long total;         /* successful allocations */
    long calls;         /* alloc calls, failed ones included */
    long fail_at;       /* 1-based call number to fail; 0: never */
    bool persist;       /* fail every call from fail_at on */
    long failed;        /* calls that returned NULL */
    size_t max_request;
    long bad_frees;     /* free of a pointer not from this allocator */
} th_counting;

#define TH_ALLOC_MAGIC 0x51464D54414C4C43ull

static inline void *th_counting_alloc(void *ctx, size_t size) {
    th_counting *c = ctx;
    c->calls++;
    if (size > c->max_request) c->max_request = size;
    if (c->fail_at && (c->calls == c->fail_at || (c->persist && c->calls > c->fail_at))) {
        c->failed++;
        return NULL;
    }
    if (size > SIZE_MAX - 16) return NULL;
    uint64_t *p = malloc(size + 16);
    if (!p) return NULL;
    p[0] = TH_ALLOC_MAGIC;
    p[1] = size;
    c->live++;
    c->total++;
    return p + 2;
}

static inline void th_counting_free(void *ctx, void *ptr) {
    th_counting *c = ctx;
    if (!ptr) return;
    uint64_t *p = (uint64_t *)ptr - 2;
    if (p[0] != TH_ALLOC_MAGIC) {
        c->bad_frees++;
        return;
    }
    p[0] = 0;
    c->live--;
    free(p);
}

static inline qfmt_allocator th_allocator(th_counting *c) {
    qfmt_allocator a;
    a.alloc = th_counting_alloc;
    a.free = th_counting_free;
    a.ctx = c;
    return a;
}

/* Open bytes with default options; asserts success. */
static inline qfmt_reader *th_open_mem(const void *data, size_t size) {
    qfmt_reader *r = NULL;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = qfmt_reader_open_memory(&r, data, size, NULL, &e);
    cr_assert_eq(s, QFMT_OK, "open_memory: %d (%s): %s", (int)s, qfmt_strerror(s), e.message);
    cr_assert_not_null(r);
    return r;
}

static inline qfmt_reader *th_open_path(const char *path) {
    qfmt_reader *r = NULL;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = qfmt_reader_open(&r, path, NULL, &e);
    cr_assert_eq(s, QFMT_OK, "open %s: %d (%s): %s", path, (int)s, qfmt_strerror(s), e.message);
    cr_assert_not_null(r);
    return r;
}

/* Expect `status` from opening bytes in memory (copied to an exact-size heap block so that
 * ASan sees any read past the end); fills *e. Returns the status. */
static inline qfmt_status th_open_expect(const uint8_t *buf, size_t size, qfmt_status want,
                                         qfmt_error *e, const char *what) {
    uint8_t *copy = th_dup(buf, size);
    qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
    memset(e, 0, sizeof *e);
    qfmt_status s = qfmt_reader_open_memory(&r, copy, size, NULL, e);
    if (s == QFMT_OK) qfmt_reader_close(r);
    else cr_expect_null(r, "%s: *out must be NULL on failure", what);
    free(copy);
    cr_expect_eq(s, want, "%s: got %d (%s), want %d (%s): %s", what, (int)s, qfmt_strerror(s),
                 (int)want, qfmt_strerror(want), e->message);
    if (s != QFMT_OK) {
        cr_expect_eq(e->code, s, "%s: err.code %d != returned %d", what, (int)e->code, (int)s);
        cr_expect_neq(e->message[0], 0, "%s: empty message", what);
    }
    return s;
}

/* The whole error as one line ("path: tensor 'x': message"), for assertion messages. Each call
 * reuses one of four buffers (tests are single-threaded). */
static inline const char *tmsg(const qfmt_error *e)
{
    static char buf[4][1024];
    static unsigned k;
    char *b = buf[k++ % 4];
    return qfmt_error_format(e, b, sizeof buf[0]);
}

#endif /* QFMT_TEST_HELPERS_H */
