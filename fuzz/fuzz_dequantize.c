/*
 * fuzz_dequantize.c - libFuzzer target for qfmt dequantize (libqfmt_model/src/dequantize.c:
 * qfmt_dequantize_file, the plan, convert.transposed, the decode and transpose loops, the
 * safetensors writer it drives).
 *
 * Input: arbitrary bytes as a qfmt file, run as given and with its checksums recomputed
 * (fuzz_checksums.h, as fuzz_reader and fuzz_model do), opened with qfmt_reader_open_memory.
 * The output dtype is picked from the input's length (KEEP, F32, F16, BF16); files whose
 * tensors would need more than 32 MiB are skipped (their bound is the reader's, tested there).
 * The output goes to a scratch directory of its own (fuzz_scratch.h) through the internal
 * qfmt__dequantize_file_io with a no-op fsync.
 *
 * Checks: the status is err.code; a failure has a message whose qfmt_error_format text holds
 * no raw control character and leaves no file (output or temporary) in the directory; a
 * success opens with qfmt_st_open holding every tensor of the source in its order, under its
 * name, with the documented type (blocks -> the dtype or F32; floats -> the dtype or their
 * own; others copied), the shape (2-D tensors in convert.transposed swapped), and the bytes:
 * those the reader reads when the type is kept (transposed back when listed), those
 * qfmt_dequantize gives otherwise (with the scalar kernel; NaNs compared by class, as the spec
 * says: seed regress_q4_1_nan_scale_and_offset).
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dequantize.h"
#include "fuzz_check.h"
#include "fuzz_checksums.h"
#include "fuzz_scratch.h"

enum { BASE_ALIGNMENT = 4096 };
#define MAX_BYTES (32ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool is_float(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

/* Listed in convert.transposed (a linear scan: the check must not share the library's set). */
static bool listed(const qfmt_reader *r, const char *name)
{
    uint64_t n;
    if (qfmt_meta_get_string_array(r, "convert.transposed", &n, NULL) != QFMT_OK) return false;
    size_t len = strlen(name);
    for (uint64_t i = 0; i < n; i++) {
        const char *p;
        uint64_t l;
        if (qfmt_meta_string_array_get(r, "convert.transposed", i, &p, &l, NULL) == QFMT_OK && l == len &&
            memcmp(p, name, len) == 0)
            return true;
    }
    return false;
}

/* Decoded values agree: the same bits, or both NaN. The spec leaves a NaN result's sign and
 * payload open (a NaN scale and a NaN offset in q4_1's d * q + m: which one propagates is the
 * compiler's choice of operand order, and clang orders the scalar and AVX2 kernels
 * differently), so decoded NaNs compare by class, as fuzz_quant and the test vectors do. */
static bool is_nan(const uint8_t *p, uint32_t type)
{
    if (type == QFMT_TYPE_F32) {
        uint32_t v;
        memcpy(&v, p, 4);
        return (v & 0x7F800000u) == 0x7F800000u && (v & 0x007FFFFFu);
    }
    uint16_t v;
    memcpy(&v, p, 2);
    if (type == QFMT_TYPE_F16) return (v & 0x7C00u) == 0x7C00u && (v & 0x03FFu);
    return (v & 0x7F80u) == 0x7F80u && (v & 0x007Fu); /* bf16 */
}

static bool same_values(const void *a, const void *b, uint64_t size, uint32_t type)
{
    size_t es = type == QFMT_TYPE_F32 ? 4 : 2;
    const uint8_t *x = a, *y = b;
    for (uint64_t i = 0; i < size; i += es)
        if (memcmp(x + i, y + i, es) != 0 && !(is_nan(x + i, type) && is_nan(y + i, type))) return false;
    return true;
}

static void check_tensor(const qfmt_reader *r, uint64_t i, const qfmt_st_tensor *t, uint32_t dtype)
{
    qfmt_tensor_info ti;
    CHECK(qfmt_tensor_get_info(r, i, &ti, NULL) == QFMT_OK);
    CHECK(strcmp(ti.name, t->name) == 0);
    const qfmt_type_traits *tt = qfmt_type_get_traits(ti.type);
    CHECK(tt != NULL);
    uint32_t want = ti.type;
    if (tt->block_elems > 1) want = dtype == QFMT_DEQUANTIZE_KEEP ? QFMT_TYPE_F32 : dtype;
    else if (is_float(ti.type) && dtype != QFMT_DEQUANTIZE_KEEP) want = dtype;
    CHECK(t->type == want);
    bool tr = ti.ndim == 2 && listed(r, ti.name);
    CHECK(t->ndim == ti.ndim);
    for (uint32_t d = 0; d < ti.ndim; d++) CHECK(t->dims[d] == ti.dims[tr ? 1 - d : d]);
    uint8_t *raw = malloc(ti.raw_size ? (size_t)ti.raw_size : 1);
    CHECK(raw != NULL);
    CHECK(qfmt_tensor_read(r, i, raw, ti.raw_size, true, NULL) == QFMT_OK);
    const uint8_t *vals = raw;
    uint8_t *dec = NULL;
    if (want != ti.type && ti.nelements) {
        CHECK((dec = malloc((size_t)t->size)) != NULL);
        uint64_t row = ti.ndim ? ti.dims[ti.ndim - 1] : 1;
        qfmt_quant_opts qo = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
        CHECK(qfmt_dequantize(want, dec, t->size, ti.type, raw, ti.nelements / row, row, &qo, NULL) == QFMT_OK);
        vals = dec;
    }
    if (!tr || !ti.nelements) {
        CHECK(dec ? same_values(t->data, vals, t->size, want) : memcmp(t->data, vals, (size_t)t->size) == 0);
    } else {
        size_t es = qfmt_type_get_traits(want)->block_bytes;
        const uint8_t *o = t->data;
        for (uint64_t a = 0; a < ti.dims[0]; a++)
            for (uint64_t b = 0; b < ti.dims[1]; b++) {
                const uint8_t *x = o + (b * ti.dims[0] + a) * es, *y = vals + (a * ti.dims[1] + b) * es;
                CHECK(memcmp(x, y, es) == 0 || (dec && is_nan(x, want) && is_nan(y, want)));
            }
    }
    free(dec);
    free(raw);
}

static uint32_t pick_dtype;

static void fuzz_one(const uint8_t *data, size_t size)
{
    qfmt_reader *r = NULL;
    if (qfmt_reader_open_memory(&r, data, size, NULL, NULL) != QFMT_OK) return;
    uint64_t n = qfmt_tensor_count(r), total = 0;
    for (uint64_t i = 0; i < n; i++) {
        qfmt_tensor_info ti;
        CHECK(qfmt_tensor_get_info(r, i, &ti, NULL) == QFMT_OK);
        uint64_t out = ti.nelements > MAX_BYTES ? MAX_BYTES : ti.nelements * 4;
        total += (ti.raw_size > MAX_BYTES ? MAX_BYTES : ti.raw_size) + out;
        if (total >= MAX_BYTES) {
            qfmt_reader_close(r);
            return;
        }
    }
    const char *dir = scratch_dir("deq");
    char path[400];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    qfmt_dequantize_opts o = QFMT_DEQUANTIZE_OPTS_INIT;
    o.dtype = pick_dtype;
    qfmt_error e;
    qfmt_dequantize_result res;
    qfmt_status s = qfmt__dequantize_file_io(r, path, &o, &io, &res, &e);
    CHECK(s == e.code);
    if (getenv("QFMT_FUZZ_VERBOSE")) {
        char buf[1200];
        fprintf(stderr, "dequantize: %s\n", s ? qfmt_error_format(&e, buf, sizeof buf) : "ok");
    }
    if (s != QFMT_OK) {
        CHECK(e.message[0] != '\0');
        char buf[1200];
        for (const unsigned char *c = (const unsigned char *)qfmt_error_format(&e, buf, sizeof buf); *c; c++)
            CHECK(*c >= 0x20 && *c != 0x7f);
        CHECK(count_files(dir) == 0);
    } else {
        CHECK(count_files(dir) == 1 && res.tensors == n);
        qfmt_st_file *f = NULL;
        CHECK(qfmt_st_open(&f, path, NULL, NULL) == QFMT_OK);
        CHECK(qfmt_st_count(f) == n);
        uint64_t bytes = 0;
        for (uint64_t i = 0; i < n; i++) {
            qfmt_st_tensor t;
            CHECK(qfmt_st_get(f, i, &t, NULL) == QFMT_OK);
            check_tensor(r, i, &t, pick_dtype);
            bytes += t.size;
        }
        CHECK(bytes == res.bytes);
        qfmt_st_close(f);
        unlink(path);
    }
    qfmt_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t dtypes[4] = {QFMT_DEQUANTIZE_KEEP, QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16};
    pick_dtype = dtypes[size % 4];
    fuzz_with_checksums_fixed(data, size, BASE_ALIGNMENT, fuzz_one);
    return 0;
}
