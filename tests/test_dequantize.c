/*
 * test_dequantize.c - qfmt_dequantize_file (libqfmt_model/src/dequantize.c), the inverse of
 * convert, and the position masks of eval --mask (qfmt_position_mask_read, token_ids.c).
 * What is written reads back through qfmt_st_open with the source's names, layouts (tensors in
 * convert.transposed transposed back) and bytes: float tensors bit for bit, block tensors as
 * qfmt_dequantize decodes them; refusals leave nothing on disk, failed writes included.
 */
#include "test_helpers.h"

#include "dequantize.h"
#include "qfmt_model.h"

static char dir[PATH_MAX];
static void setup(void) { th_mkdtemp(dir); }
static void teardown(void) { th_rmtree(dir); }
TestSuite(dequantize, .init = setup, .fini = teardown);
TestSuite(position_mask, .init = setup, .fini = teardown);

/* The source: "w" f32 [2, 3] listed in convert.transposed, "q" q8_0 [2, 32], "h" bf16 [4],
 * "i" i32 scalar, "e" f32 [0, 5] (listed too: an empty tensor has nothing to move). */
static float wv[6] = {1, 2, 3, 4, 5, 6};
static float qsrc[64];
static uint8_t qv[2 * 34];
static uint16_t hv[4] = {0x3F80, 0xC000, 0x7F80, 0x0001};
static int32_t iv = -7;

static void write_source(const char *path, bool list_transposed)
{
    for (int i = 0; i < 64; i++) qsrc[i] = (float)(i - 30) / 8.0f;
    qfmt_error e;
    qfmt_quant_opts qo = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO};
    TH_OKE(qfmt_quantize(QFMT_TYPE_Q8_0, qv, sizeof qv, QFMT_TYPE_F32, qsrc, 2, 32, &qo, &e), e);
    qfmt_writer *w = NULL;
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
    const char *tr[2] = {"w", "e"};
    if (list_transposed) TH_OKE(qfmt_writer_set_string_array(w, "convert.transposed", tr, NULL, 2, &e), e);
    uint64_t dw[2] = {2, 3}, dq[2] = {2, 32}, dh[1] = {4}, de[2] = {0, 5};
    qfmt_tensor_desc d = th_desc("w", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, dw);
    TH_OKE(qfmt_writer_add_tensor(w, &d, wv, sizeof wv, &e), e);
    d = th_desc("q", QFMT_TYPE_Q8_0, QFMT_CODEC_ZSTD, 2, dq);
    TH_OKE(qfmt_writer_add_tensor(w, &d, qv, sizeof qv, &e), e);
    d = th_desc("h", QFMT_TYPE_BF16, QFMT_CODEC_NONE, 1, dh);
    TH_OKE(qfmt_writer_add_tensor(w, &d, hv, sizeof hv, &e), e);
    d = th_desc("i", QFMT_TYPE_I32, QFMT_CODEC_NONE, 0, NULL);
    TH_OKE(qfmt_writer_add_tensor(w, &d, &iv, sizeof iv, &e), e);
    d = th_desc("e", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, de);
    TH_OKE(qfmt_writer_add_tensor(w, &d, wv, 0, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
}

static const qfmt_st_tensor *get(const qfmt_st_file *f, const char *name, qfmt_st_tensor *t)
{
    uint64_t idx;
    cr_assert_eq(qfmt_st_find(f, name, &idx, NULL), QFMT_OK, "%s is missing", name);
    cr_assert_eq(qfmt_st_get(f, idx, t, NULL), QFMT_OK);
    return t;
}

static qfmt_reader *open_src(const char *path)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    TH_OKE(qfmt_reader_open(&r, path, NULL, &e), e);
    return r;
}

Test(dequantize, layouts_types_and_bytes)
{
    char src[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/m.qfmt", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    write_source(src, true);
    qfmt_reader *r = open_src(src);
    qfmt_error e;
    qfmt_dequantize_result res;
    TH_OKE(qfmt_dequantize_file(r, out, NULL, &res, &e), e);
    cr_assert_eq(res.tensors, 5);
    cr_assert_eq(res.bytes, 24 + 64 * 4 + 8 + 4 + 0);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, out, NULL, &e), e);
    cr_assert_eq(qfmt_st_count(f), 5);
    qfmt_st_tensor t;
    get(f, "w", &t); /* back to [3, 2]: column-major of the stored [2, 3] */
    cr_assert(t.type == QFMT_TYPE_F32 && t.ndim == 2 && t.dims[0] == 3 && t.dims[1] == 2);
    float back[6], want[6] = {1, 4, 2, 5, 3, 6};
    memcpy(back, t.data, sizeof back);
    cr_assert_arr_eq(back, want, sizeof want);
    get(f, "q", &t); /* decoded to f32, as qfmt_dequantize decodes it */
    cr_assert(t.type == QFMT_TYPE_F32 && t.ndim == 2 && t.dims[0] == 2 && t.dims[1] == 32);
    float dec[64];
    qfmt_quant_opts qo = {.threads = 1, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_SCALAR};
    TH_OKE(qfmt_dequantize(QFMT_TYPE_F32, dec, sizeof dec, QFMT_TYPE_Q8_0, qv, 2, 32, &qo, &e), e);
    cr_assert_arr_eq(t.data, dec, sizeof dec);
    get(f, "h", &t); /* a float keeps its type: bit for bit */
    cr_assert(t.type == QFMT_TYPE_BF16 && t.size == sizeof hv);
    cr_assert_arr_eq(t.data, hv, sizeof hv);
    get(f, "i", &t);
    cr_assert(t.type == QFMT_TYPE_I32 && t.ndim == 0 && t.size == 4);
    cr_assert_arr_eq(t.data, &iv, 4);
    get(f, "e", &t); /* [0, 5] transposed: [5, 0] */
    cr_assert(t.ndim == 2 && t.dims[0] == 5 && t.dims[1] == 0 && t.size == 0);
    qfmt_st_close(f);
    qfmt_reader_close(r);
}

Test(dequantize, dtype_applies_to_floats_and_blocks)
{
    char src[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/m.qfmt", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    write_source(src, false);
    qfmt_reader *r = open_src(src);
    qfmt_error e;
    qfmt_dequantize_opts o = QFMT_DEQUANTIZE_OPTS_INIT;
    o.dtype = QFMT_TYPE_F16;
    TH_OKE(qfmt_dequantize_file(r, out, &o, NULL, &e), e);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, out, NULL, &e), e);
    qfmt_st_tensor t;
    cr_assert_eq(get(f, "w", &t)->type, QFMT_TYPE_F16);
    cr_assert(t.dims[0] == 2 && t.dims[1] == 3, "not listed: stays [2, 3]");
    cr_assert_eq(get(f, "q", &t)->type, QFMT_TYPE_F16);
    cr_assert_eq(get(f, "h", &t)->type, QFMT_TYPE_F16);
    cr_assert_eq(get(f, "i", &t)->type, QFMT_TYPE_I32, "integers are copied");
    qfmt_st_close(f);
    qfmt_reader_close(r);
}

Test(dequantize, bad_options_are_refused_before_anything_is_written)
{
    char src[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/m.qfmt", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    write_source(src, true);
    qfmt_reader *r = open_src(src);
    qfmt_error e;
    qfmt_dequantize_opts o = QFMT_DEQUANTIZE_OPTS_INIT;
    o.reserved[2] = 1;
    cr_assert_eq(qfmt_dequantize_file(r, out, &o, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(e.code, QFMT_E_ARG);
    o = (qfmt_dequantize_opts)QFMT_DEQUANTIZE_OPTS_INIT;
    o.dtype = QFMT_TYPE_Q8_0;
    cr_assert_eq(qfmt_dequantize_file(r, out, &o, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_dequantize_file(NULL, out, NULL, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_dequantize_file(r, NULL, NULL, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "only the source is there");
    qfmt_reader_close(r);
}

/* A write that fails half way (ENOSPC on the n-th write call): an error naming the output,
 * and neither the output nor its temporary file left, for every n. */
typedef struct {
    int calls, fail_at;
} failing;

static ssize_t failing_write(void *ctx, int fd, const void *p, size_t n)
{
    failing *f = ctx;
    if (++f->calls == f->fail_at) {
        errno = ENOSPC;
        return -1;
    }
    return write(fd, p, n);
}

static int fsync_ok(void *ctx, int fd)
{
    (void)ctx, (void)fd;
    return 0;
}

Test(dequantize, failed_write_leaves_nothing)
{
    char src[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/m.qfmt", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    write_source(src, true);
    qfmt_reader *r = open_src(src);
    int seen_fail = 0;
    for (int n = 1; n < 40; n++) {
        failing fc = {0, n};
        qfmt_io io = qfmt_io_posix;
        io.write = failing_write;
        io.fsync = fsync_ok;
        io.ctx = &fc;
        qfmt_error e;
        qfmt_status s = qfmt__dequantize_file_io(r, out, NULL, &io, NULL, &e);
        if (fc.calls < n) { /* fewer writes than n: it succeeded, and is the whole file */
            cr_assert_eq(s, QFMT_OK, "%s", tmsg(&e));
            cr_assert(th_exists(out));
            unlink(out);
            break;
        }
        seen_fail++;
        cr_assert_eq(s, QFMT_E_IO, "write %d failed, status %d: %s", n, (int)s, tmsg(&e));
        cr_assert(strstr(e.path, "m.safetensors") != NULL, "names the output: %s", tmsg(&e));
        cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "write %d: only the source is left", n);
    }
    cr_assert_geq(seen_fail, 1);
    qfmt_reader_close(r);
}

Test(dequantize, unknown_transposed_list_is_refused)
{
    /* convert.transposed as a u32 array, not strings: the layout cannot be known */
    char src[PATH_MAX + 16], out[PATH_MAX + 16];
    snprintf(src, sizeof src, "%s/m.qfmt", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    qfmt_writer *w = NULL;
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, src, &wo, &e), e);
    uint32_t bogus[2] = {1, 2};
    TH_OKE(qfmt_writer_set_array(w, "convert.transposed", QFMT_META_U32, bogus, 2, &e), e);
    uint64_t dw[2] = {2, 3};
    qfmt_tensor_desc d = th_desc("w", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, dw);
    TH_OKE(qfmt_writer_add_tensor(w, &d, wv, sizeof wv, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    qfmt_reader *r = open_src(src);
    cr_assert_eq(qfmt_dequantize_file(r, out, NULL, NULL, &e), QFMT_E_TYPE, "%s", tmsg(&e));
    cr_assert(strstr(e.message, "convert.transposed") != NULL, "%s", tmsg(&e));
    cr_assert_not(th_exists(out));
    qfmt_reader_close(r);
}

/* ---- qfmt_position_mask_read ---------------------------------------------------------------- */

static qfmt_st_file *mask_file(const char *name, uint32_t type, uint32_t ndim, uint64_t d0, uint64_t d1,
                               const uint8_t *bytes)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/mask.safetensors", dir);
    qfmt_st_tensor_desc t = QFMT_ST_TENSOR_DESC_INIT;
    t.name = name;
    t.type = type;
    t.ndim = ndim;
    t.dims[0] = d0;
    t.dims[1] = d1;
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_writer_begin(&w, path, &t, 1, NULL, &e), e);
    uint64_t n = ndim == 2 ? d0 * d1 : d0;
    TH_OKE(qfmt_st_writer_write(w, bytes, (size_t)(n * (type == QFMT_TYPE_I32 ? 4 : 1)), &e), e);
    TH_OKE(qfmt_st_writer_commit(w, &e), e);
    qfmt_st_writer_free(w);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, path, NULL, &e), e);
    return f;
}

Test(position_mask, reads_rows_as_zero_or_one)
{
    uint8_t b[12] = {0, 1, 2, 0, 255, 0, 1, 1, 0, 0, 0, 7};
    qfmt_st_file *f = mask_file("mask", QFMT_TYPE_U8, 2, 3, 4, b);
    uint8_t out[8];
    qfmt_error e;
    TH_OKE(qfmt_position_mask_read(f, "mask", false, 2, 4, out, &e), e); /* the first 2 of 3 rows */
    uint8_t want[8] = {0, 1, 1, 0, 1, 0, 1, 1};
    cr_assert_arr_eq(out, want, 8);
    qfmt_st_close(f);
}

Test(position_mask, other_names_types_and_shapes_are_refused)
{
    uint8_t b[16] = {1};
    uint8_t out[16];
    qfmt_error e;
    qfmt_st_file *f = mask_file("m2", QFMT_TYPE_U8, 2, 2, 4, b);
    cr_assert_eq(qfmt_position_mask_read(f, "mask", false, 2, 4, out, &e), QFMT_E_NOT_FOUND);
    TH_OKE(qfmt_position_mask_read(f, "mask", true, 2, 4, out, &e), e); /* the first tensor */
    cr_assert_eq(qfmt_position_mask_read(f, "mask", true, 3, 4, out, &e), QFMT_E_RANGE, "3 rows of 2");
    cr_assert(strstr(e.message, "[2, 4]") && strstr(e.message, "[>= 3, 4]"), "%s", tmsg(&e));
    cr_assert_eq(qfmt_position_mask_read(f, "mask", true, 2, 8, out, &e), QFMT_E_RANGE, "8 columns of 4");
    cr_assert_eq(qfmt_position_mask_read(f, "mask", true, UINT64_MAX, 2, out, &e), QFMT_E_ARG);
    qfmt_st_close(f);
    f = mask_file("mask", QFMT_TYPE_U8, 1, 8, 0, b);
    cr_assert_eq(qfmt_position_mask_read(f, "mask", false, 2, 4, out, &e), QFMT_E_RANGE, "1-D");
    qfmt_st_close(f);
    f = mask_file("mask", QFMT_TYPE_I32, 2, 2, 2, b);
    cr_assert_eq(qfmt_position_mask_read(f, "mask", false, 2, 2, out, &e), QFMT_E_TYPE);
    cr_assert(strstr(e.message, "I32") != NULL, "%s", tmsg(&e));
    qfmt_st_close(f);
}
