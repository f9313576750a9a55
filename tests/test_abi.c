/*
 * test_abi.c - the ABI of qfmt.h, as lz4's tests/abiTest.c checks it: the size, alignment and
 * every field's offset and size of every public struct, against a table written for the
 * current QFMT_VERSION_MAJOR. A layout change without a MAJOR bump fails here; with one, write
 * the new table under the new number. Giving reserved space a meaning (a MINOR change) keeps
 * the sizes and every old offset: add the new field's row, shrink the reserved row.
 *
 * Also the rule that makes growing possible (qfmt.h, "Structs that can grow"): the INIT macros
 * give zeros, and the library refuses a struct whose reserved fields are not zero.
 *
 * The numbers are those of the LP64 ABI (x86-64 and AArch64 Linux); elsewhere the table is
 * skipped. The static-linking-only structs are unstable by definition and not listed.
 */
#include "test_helpers.h"

#include <stdalign.h>
#include <stddef.h>

typedef struct {
    const char *type, *field; /* field NULL: the struct itself */
    size_t got_offset, got_size, want_offset, want_size;
} abi_row;

#define ABI_STRUCT(T, size, align) {#T, NULL, alignof(T), sizeof(T), align, size}
#define ABI_FIELD(T, f, off, size) {#T, #f, offsetof(T, f), sizeof(((T *)0)->f), off, size}

#if QFMT_VERSION_MAJOR == 0
static const abi_row ABI[] = {
    ABI_STRUCT(qfmt_error, 688, 8),
    ABI_FIELD(qfmt_error, code, 0, 4),
    ABI_FIELD(qfmt_error, sys_errno, 4, 4),
    ABI_FIELD(qfmt_error, offset, 8, 8),
    ABI_FIELD(qfmt_error, path, 16, 256),
    ABI_FIELD(qfmt_error, tensor, 272, 128),
    ABI_FIELD(qfmt_error, message, 400, 256),
    ABI_FIELD(qfmt_error, reserved, 656, 32),
    ABI_STRUCT(qfmt_allocator, 24, 8),
    ABI_FIELD(qfmt_allocator, alloc, 0, 8),
    ABI_FIELD(qfmt_allocator, free, 8, 8),
    ABI_FIELD(qfmt_allocator, ctx, 16, 8),
    ABI_STRUCT(qfmt_type_traits, 24, 8),
    ABI_FIELD(qfmt_type_traits, name, 0, 8),
    ABI_FIELD(qfmt_type_traits, block_elems, 8, 4),
    ABI_FIELD(qfmt_type_traits, block_bytes, 12, 4),
    ABI_FIELD(qfmt_type_traits, is_float, 16, 1),
    ABI_STRUCT(qfmt_quant_opts, 48, 8),
    ABI_FIELD(qfmt_quant_opts, threads, 0, 4),
    ABI_FIELD(qfmt_quant_opts, quality, 4, 4),
    ABI_FIELD(qfmt_quant_opts, kernel, 8, 4),
    ABI_FIELD(qfmt_quant_opts, importance, 16, 8), /* was reserved[0]: zero means none */
    ABI_FIELD(qfmt_quant_opts, reserved, 24, 24),
    ABI_STRUCT(qfmt_open_opts, 48, 8),
    ABI_FIELD(qfmt_open_opts, alloc, 0, 8),
    ABI_FIELD(qfmt_open_opts, verify_checksums, 8, 1),
    ABI_FIELD(qfmt_open_opts, reserved, 16, 32),
    ABI_STRUCT(qfmt_file_info, 168, 8),
    ABI_FIELD(qfmt_file_info, version_major, 0, 2),
    ABI_FIELD(qfmt_file_info, version_minor, 2, 2),
    ABI_FIELD(qfmt_file_info, required_features, 4, 4),
    ABI_FIELD(qfmt_file_info, optional_features, 8, 4),
    ABI_FIELD(qfmt_file_info, alignment, 12, 4),
    ABI_FIELD(qfmt_file_info, file_size, 16, 8),
    ABI_FIELD(qfmt_file_info, tensor_count, 24, 8),
    ABI_FIELD(qfmt_file_info, metadata_count, 32, 8),
    ABI_FIELD(qfmt_file_info, data_offset, 40, 8),
    ABI_FIELD(qfmt_file_info, data_size, 48, 8),
    ABI_FIELD(qfmt_file_info, metadata_offset, 56, 8),
    ABI_FIELD(qfmt_file_info, metadata_size, 64, 8),
    ABI_FIELD(qfmt_file_info, directory_offset, 72, 8),
    ABI_FIELD(qfmt_file_info, directory_size, 80, 8),
    ABI_FIELD(qfmt_file_info, header_checksum, 88, 8),
    ABI_FIELD(qfmt_file_info, index_checksum, 96, 8),
    ABI_FIELD(qfmt_file_info, reserved, 104, 64),
    ABI_STRUCT(qfmt_tensor_info, 192, 8),
    ABI_FIELD(qfmt_tensor_info, name, 0, 8),
    ABI_FIELD(qfmt_tensor_info, type, 8, 4),
    ABI_FIELD(qfmt_tensor_info, codec, 12, 4),
    ABI_FIELD(qfmt_tensor_info, ndim, 16, 4),
    ABI_FIELD(qfmt_tensor_info, dims, 24, 64),
    ABI_FIELD(qfmt_tensor_info, nelements, 88, 8),
    ABI_FIELD(qfmt_tensor_info, offset, 96, 8),
    ABI_FIELD(qfmt_tensor_info, stored_size, 104, 8),
    ABI_FIELD(qfmt_tensor_info, raw_size, 112, 8),
    ABI_FIELD(qfmt_tensor_info, checksum, 120, 8),
    ABI_FIELD(qfmt_tensor_info, reserved, 128, 64),
    ABI_STRUCT(qfmt_value, 24, 8),
    ABI_FIELD(qfmt_value, type, 0, 4),
    ABI_FIELD(qfmt_value, v, 8, 16),
    ABI_FIELD(qfmt_value, v.u, 8, 8),
    ABI_FIELD(qfmt_value, v.i, 8, 8),
    ABI_FIELD(qfmt_value, v.f, 8, 8),
    ABI_FIELD(qfmt_value, v.str.ptr, 8, 8),
    ABI_FIELD(qfmt_value, v.str.len, 16, 8),
    ABI_FIELD(qfmt_value, v.arr.elem_type, 8, 4),
    ABI_FIELD(qfmt_value, v.arr.count, 16, 8),
    ABI_FIELD(qfmt_value, v.raw.ptr, 8, 8),
    ABI_FIELD(qfmt_value, v.raw.len, 16, 8),
    ABI_STRUCT(qfmt_write_opts, 48, 8),
    ABI_FIELD(qfmt_write_opts, alloc, 0, 8),
    ABI_FIELD(qfmt_write_opts, alignment, 8, 4),
    ABI_FIELD(qfmt_write_opts, no_fsync, 12, 1),
    ABI_FIELD(qfmt_write_opts, reserved, 16, 32),
    ABI_STRUCT(qfmt_tensor_desc, 120, 8),
    ABI_FIELD(qfmt_tensor_desc, name, 0, 8),
    ABI_FIELD(qfmt_tensor_desc, type, 8, 4),
    ABI_FIELD(qfmt_tensor_desc, ndim, 12, 4),
    ABI_FIELD(qfmt_tensor_desc, dims, 16, 64),
    ABI_FIELD(qfmt_tensor_desc, codec, 80, 4),
    ABI_FIELD(qfmt_tensor_desc, zstd_level, 84, 4),
    ABI_FIELD(qfmt_tensor_desc, reserved, 88, 32),
    ABI_STRUCT(qfmt_st_tensor, 184, 8),
    ABI_FIELD(qfmt_st_tensor, name, 0, 8),
    ABI_FIELD(qfmt_st_tensor, dtype, 8, 8),
    ABI_FIELD(qfmt_st_tensor, type, 16, 4),
    ABI_FIELD(qfmt_st_tensor, ndim, 20, 4),
    ABI_FIELD(qfmt_st_tensor, dims, 24, 64),
    ABI_FIELD(qfmt_st_tensor, nelements, 88, 8),
    ABI_FIELD(qfmt_st_tensor, data, 96, 8),
    ABI_FIELD(qfmt_st_tensor, size, 104, 8),
    ABI_FIELD(qfmt_st_tensor, offset, 112, 8),
    ABI_FIELD(qfmt_st_tensor, reserved, 120, 64),
    ABI_STRUCT(qfmt_st_tensor_desc, 112, 8),
    ABI_FIELD(qfmt_st_tensor_desc, name, 0, 8),
    ABI_FIELD(qfmt_st_tensor_desc, type, 8, 4),
    ABI_FIELD(qfmt_st_tensor_desc, ndim, 12, 4),
    ABI_FIELD(qfmt_st_tensor_desc, dims, 16, 64),
    ABI_FIELD(qfmt_st_tensor_desc, reserved, 80, 32),
};
#else
#error "write the ABI table of this QFMT_VERSION_MAJOR (see the comment at the top)"
#endif

Test(abi, struct_layouts_match_the_table_of_this_major_version) {
    if (sizeof(void *) != 8 || sizeof(long) != 8) cr_skip_test("the table is for LP64");
    for (size_t i = 0; i < sizeof ABI / sizeof ABI[0]; i++) {
        const abi_row *r = &ABI[i];
        if (!r->field) {
            cr_expect_eq(r->got_size, r->want_size, "sizeof(%s) is %zu, the ABI says %zu", r->type,
                         r->got_size, r->want_size);
            cr_expect_eq(r->got_offset, r->want_offset, "alignof(%s) is %zu, the ABI says %zu",
                         r->type, r->got_offset, r->want_offset);
        } else {
            cr_expect_eq(r->got_offset, r->want_offset, "offsetof(%s, %s) is %zu, the ABI says %zu",
                         r->type, r->field, r->got_offset, r->want_offset);
            cr_expect_eq(r->got_size, r->want_size, "sizeof(%s.%s) is %zu, the ABI says %zu", r->type,
                         r->field, r->got_size, r->want_size);
        }
    }
}

/* Every field is listed: the fields' sizes, with the padding the table implies, cover the struct. */
Test(abi, table_lists_every_field) {
    for (size_t i = 0; i < sizeof ABI / sizeof ABI[0];) {
        const abi_row *s = &ABI[i++];
        cr_assert_null(s->field);
        size_t end = 0;
        for (; i < sizeof ABI / sizeof ABI[0] && ABI[i].field; i++)
            if (!strchr(ABI[i].field, '.') && ABI[i].want_offset + ABI[i].want_size > end)
                end = ABI[i].want_offset + ABI[i].want_size;
        cr_assert_leq(end, s->want_size, "%s", s->type);
        cr_assert_lt(s->want_size - end, s->want_offset, "%s: more than padding after the last field",
                     s->type);
    }
}

/* Values a compiled caller holds: they never change within a major version. */
Test(abi, constants) {
    cr_assert_eq(QFMT_OK, 0);
    cr_assert_eq(QFMT_E_IO, 1);
    cr_assert_eq(QFMT_E_ARG, 10);
    cr_assert_eq(QFMT_E_EXISTS, 13);
    cr_assert_eq(QFMT_MAX_DIMS, 8u);
    cr_assert_eq(QFMT_NO_OFFSET, UINT64_MAX);
    cr_assert_eq(QFMT_CPU_AVX2, 1u);
    cr_assert_eq(QFMT_CPU_AVX512_VNNI, 2u);
    cr_assert_eq(QFMT_KERNEL_AUTO, 0);
    cr_assert_eq(QFMT_KERNEL_SCALAR, 1);
    cr_assert_eq(QFMT_KERNEL_AVX2, 2);
    cr_assert_eq(QFMT_QUALITY_REFERENCE, 0);
    cr_assert_eq(QFMT_QUALITY_BEST, 1);
    cr_assert_eq(QFMT_CODEC_NONE, 0);
    cr_assert_eq(QFMT_CODEC_ZSTD, 1);
    cr_assert_eq(qfmt_version_number(), QFMT_VERSION_NUMBER);
}

static bool all_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i]) return false;
    return true;
}

/* The INIT macros are all zeros (every default is 0), field for field. */
Test(abi, init_macros_are_zero) {
    qfmt_open_opts oo = QFMT_OPEN_OPTS_INIT;
    qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
    qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
    qfmt_tensor_desc td = QFMT_TENSOR_DESC_INIT;
    qfmt_st_tensor_desc sd = QFMT_ST_TENSOR_DESC_INIT;
    cr_assert(oo.alloc == NULL && !oo.verify_checksums && all_zero(oo.reserved, sizeof oo.reserved));
    cr_assert(wo.alloc == NULL && wo.alignment == 0 && !wo.no_fsync && all_zero(wo.reserved, sizeof wo.reserved));
    cr_assert(qo.threads == 0 && qo.quality == QFMT_QUALITY_REFERENCE && qo.kernel == QFMT_KERNEL_AUTO &&
              qo.importance == NULL && all_zero(qo.reserved, sizeof qo.reserved));
    cr_assert(td.name == NULL && td.type == 0 && td.ndim == 0 && all_zero(td.dims, sizeof td.dims) &&
              td.codec == QFMT_CODEC_NONE && td.zstd_level == 0 && all_zero(td.reserved, sizeof td.reserved));
    cr_assert(sd.name == NULL && sd.type == 0 && sd.ndim == 0 && all_zero(sd.dims, sizeof sd.dims) &&
              all_zero(sd.reserved, sizeof sd.reserved));
}

static void expect_reserved_refused(qfmt_status s, const qfmt_error *e, const char *what) {
    cr_assert_eq(s, QFMT_E_ARG, "%s: %d (%s)", what, (int)s, e->message);
    cr_assert_eq(e->code, QFMT_E_ARG);
    cr_assert_not_null(strstr(e->message, "reserved"), "%s: message '%s'", what, e->message);
}

/* A non-zero reserved field is refused wherever such a struct goes in; zero is accepted. */
Test(abi, reserved_fields_must_be_zero) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/r.qfmt", dir);
    qfmt_error e;
    for (size_t k = 0; k < 4; k++) {
        /* writer options */
        qfmt_write_opts wo = QFMT_WRITE_OPTS_INIT;
        wo.no_fsync = true;
        wo.reserved[k] = 1;
        qfmt_writer *w = NULL;
        expect_reserved_refused(qfmt_writer_create(&w, path, &wo, &e), &e, "qfmt_write_opts");
        cr_assert_null(w);
        cr_assert_eq(th_count_entries(dir, NULL, 0), 0);
        /* tensor descriptions (the writer stays usable) */
        wo.reserved[k] = 0;
        TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
        float x[4] = {1, 2, 3, 4};
        qfmt_tensor_desc td = QFMT_TENSOR_DESC_INIT;
        td.name = "x";
        td.type = QFMT_TYPE_F32;
        td.ndim = 1;
        td.dims[0] = 4;
        td.reserved[k] = 1u << k;
        expect_reserved_refused(qfmt_writer_add_tensor(w, &td, x, sizeof x, &e), &e, "add_tensor");
        expect_reserved_refused(qfmt_writer_begin_tensor(w, &td, &e), &e, "begin_tensor");
        td.reserved[k] = 0;
        TH_OKE(qfmt_writer_add_tensor(w, &td, x, sizeof x, &e), e);
        TH_OKE(qfmt_writer_finish(w, &e), e);
        qfmt_writer_free(w);
        /* reader options */
        qfmt_open_opts oo = QFMT_OPEN_OPTS_INIT;
        oo.reserved[k] = UINT64_MAX;
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        expect_reserved_refused(qfmt_reader_open(&r, path, &oo, &e), &e, "qfmt_open_opts");
        cr_assert_null(r);
        size_t n;
        uint8_t *b = th_read_file(path, &n);
        expect_reserved_refused(qfmt_reader_open_memory(&r, b, n, &oo, &e), &e, "qfmt_open_opts (memory)");
        oo.reserved[k] = 0;
        TH_OKE(qfmt_reader_open_memory(&r, b, n, &oo, &e), e);
        /* what the library fills has its reserved space zeroed */
        qfmt_file_info fi;
        memset(&fi, 0xAB, sizeof fi);
        qfmt_reader_file_info(r, &fi);
        cr_assert(all_zero(fi.reserved, sizeof fi.reserved));
        qfmt_tensor_info ti;
        memset(&ti, 0xAB, sizeof ti);
        TH_OKE(qfmt_tensor_get_info(r, 0, &ti, &e), e);
        cr_assert(all_zero(ti.reserved, sizeof ti.reserved));
        qfmt_error fe;
        memset(&fe, 0xAB, sizeof fe);
        cr_assert_eq(qfmt_tensor_get_info(r, 5, &ti, &fe), QFMT_E_RANGE);
        cr_assert(all_zero(fe.reserved, sizeof fe.reserved));
        qfmt_reader_close(r);
        /* quantization options */
        qfmt_quant_opts qo = QFMT_QUANT_OPTS_INIT;
        if (k >= sizeof qo.reserved / sizeof qo.reserved[0]) { /* reserved[3] became `importance` */
            free(b);
            unlink(path);
            continue;
        }
        qo.reserved[k] = 1;
        float src[32] = {0}, back[32];
        uint8_t q[34];
        expect_reserved_refused(qfmt_quantize(QFMT_TYPE_Q8_0, q, sizeof q, QFMT_TYPE_F32, src, 1, 32, &qo, &e),
                                &e, "quantize");
        expect_reserved_refused(qfmt_dequantize(QFMT_TYPE_F32, back, sizeof back, QFMT_TYPE_Q8_0, q, 1, 32, &qo, &e),
                                &e, "dequantize");
        qo.reserved[k] = 0;
        TH_OKE(qfmt_quantize(QFMT_TYPE_Q8_0, q, sizeof q, QFMT_TYPE_F32, src, 1, 32, &qo, &e), e);
        free(b);
        unlink(path);
    }
    th_rmtree(dir);
}

/* ---- qfmt_model.h ----------------------------------------------------------------------------
 * libqfmt_model's public structs, pinned the same way (LP64 figures). */
#include "qfmt_model.h"

typedef struct {
    const char *type, *field; /* field NULL: the struct itself */
    size_t want_a, want_b, got_a, got_b; /* offset and size, or size and alignment */
} model_abi_row;
#define MS(T, size, align) {#T, NULL, size, align, sizeof(T), alignof(T)}
#define MF(T, f, off, size) {#T, #f, off, size, offsetof(T, f), sizeof(((T *)0)->f)}

Test(abi, model_struct_layouts_match_the_major_version) {
#if QFMT_VERSION_MAJOR == 0 && defined(__LP64__)
    static const model_abi_row rows[] = {
        MS(qfmt_model_hparams, 176, 8),
        MF(qfmt_model_hparams, arch, 0, 4),
        MF(qfmt_model_hparams, family, 8, 8),
        MF(qfmt_model_hparams, vocab, 16, 8),
        MF(qfmt_model_hparams, d, 24, 8),
        MF(qfmt_model_hparams, layers, 32, 8),
        MF(qfmt_model_hparams, heads, 40, 8),
        MF(qfmt_model_hparams, kv_heads, 48, 8),
        MF(qfmt_model_hparams, head_dim, 56, 8),
        MF(qfmt_model_hparams, ffn, 64, 8),
        MF(qfmt_model_hparams, ctx, 72, 8),
        MF(qfmt_model_hparams, type_vocab, 80, 8),
        MF(qfmt_model_hparams, eps, 88, 8),
        MF(qfmt_model_hparams, rope_theta, 96, 8),
        MF(qfmt_model_hparams, rope_freq_type, 104, 4),
        MF(qfmt_model_hparams, causal, 108, 1),
        MF(qfmt_model_hparams, reserved, 112, 64),
        MS(qfmt_run_opts, 40, 8),
        MF(qfmt_run_opts, threads, 0, 4),
        MF(qfmt_run_opts, exact, 4, 1),
        MF(qfmt_run_opts, reserved, 8, 32),
        MS(qfmt_convert_opts, 128, 8),
        MF(qfmt_convert_opts, type, 0, 4),
        MF(qfmt_convert_opts, quality, 4, 4),
        MF(qfmt_convert_opts, zstd_level, 8, 4),
        MF(qfmt_convert_opts, threads, 12, 4),
        MF(qfmt_convert_opts, keep, 16, 8),
        MF(qfmt_convert_opts, nkeep, 24, 8),
        MF(qfmt_convert_opts, quantize, 32, 8),
        MF(qfmt_convert_opts, nquantize, 40, 8),
        MF(qfmt_convert_opts, progress, 48, 8),
        MF(qfmt_convert_opts, note, 56, 8),
        MF(qfmt_convert_opts, temp_file, 64, 8),
        MF(qfmt_convert_opts, warning, 72, 8),
        MF(qfmt_convert_opts, ctx, 80, 8),
        MF(qfmt_convert_opts, flags, 88, 4),
        MF(qfmt_convert_opts, types, 96, 8),
        MF(qfmt_convert_opts, importance, 104, 8),
        MF(qfmt_convert_opts, reserved, 112, 16),
        MS(qfmt_convert_types, 80, 8),
        MF(qfmt_convert_types, mix, 0, 8),
        MF(qfmt_convert_types, rules, 8, 8),
        MF(qfmt_convert_types, nrules, 16, 8),
        MF(qfmt_convert_types, target_bpw, 24, 8),
        MF(qfmt_convert_types, target_types, 32, 8),
        MF(qfmt_convert_types, ntarget_types, 40, 8),
        MF(qfmt_convert_types, reserved, 48, 32),
        MS(qfmt_convert_rule, 16, 8),
        MF(qfmt_convert_rule, glob, 0, 8),
        MF(qfmt_convert_rule, type, 8, 4),
        MS(qfmt_convert_result, 72, 8),
        MF(qfmt_convert_result, tensors, 0, 8),
        MF(qfmt_convert_result, tensors_total, 8, 8),
        MF(qfmt_convert_result, elements, 16, 8),
        MF(qfmt_convert_result, bytes_in, 24, 8),
        MF(qfmt_convert_result, bytes_total, 32, 8),
        MF(qfmt_convert_result, reserved, 40, 32),
        MS(qfmt_dequantize_opts, 64, 8),
        MF(qfmt_dequantize_opts, dtype, 0, 4),
        MF(qfmt_dequantize_opts, threads, 4, 4),
        MF(qfmt_dequantize_opts, progress, 8, 8),
        MF(qfmt_dequantize_opts, temp_file, 16, 8),
        MF(qfmt_dequantize_opts, ctx, 24, 8),
        MF(qfmt_dequantize_opts, reserved, 32, 32),
        MS(qfmt_dequantize_result, 48, 8),
        MF(qfmt_dequantize_result, tensors, 0, 8),
        MF(qfmt_dequantize_result, bytes, 8, 8),
        MF(qfmt_dequantize_result, reserved, 16, 32),
        MS(qfmt_family_tensor, 40, 8),
        MF(qfmt_family_tensor, name, 0, 8),
        MF(qfmt_family_tensor, ndim, 8, 4),
        MF(qfmt_family_tensor, dims, 16, 16),
        MF(qfmt_family_tensor, optional, 32, 1),
        MF(qfmt_family_tensor, quantize, 33, 1),
        MF(qfmt_family_tensor, conv1d, 34, 1),
        MS(qfmt_candidate, 8, 4),
        MF(qfmt_candidate, p, 0, 4),
        MF(qfmt_candidate, id, 4, 4),
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const model_abi_row *r = &rows[i];
        cr_expect_eq(r->got_a, r->want_a, "%s%s%s: %s %zu, the %d.x ABI says %zu", r->type, r->field ? "." : "",
                     r->field ? r->field : "", r->field ? "offset" : "size", r->got_a, QFMT_VERSION_MAJOR, r->want_a);
        cr_expect_eq(r->got_b, r->want_b, "%s%s%s: %s %zu, the %d.x ABI says %zu", r->type, r->field ? "." : "",
                     r->field ? r->field : "", r->field ? "size" : "alignment", r->got_b, QFMT_VERSION_MAJOR,
                     r->want_b);
    }
#else
    cr_skip_test("no table for this target or major version");
#endif
}

/* libqfmt_model's input structs follow the same rule: INIT macros, reserved fields refused
 * when not zero. */
Test(abi, model_reserved_fields_must_be_zero) {
    qfmt_run_opts ro = QFMT_RUN_OPTS_INIT;
    cr_expect_eq(ro.threads, 1u);
    cr_expect(ro.exact);
    for (size_t k = 0; k < 4; k++) cr_expect_eq(ro.reserved[k], 0u);
    qfmt_convert_opts co = QFMT_CONVERT_OPTS_INIT;
    cr_expect_eq(co.type, (uint32_t)QFMT_TYPE_F32);
    cr_expect_eq(co.zstd_level, 0);
    for (size_t k = 0; k < 2; k++) cr_expect_eq(co.reserved[k], 0u);
    cr_expect_null(co.types);
    cr_expect_null(co.importance);
    /* qfmt_convert_hf refuses a non-zero reserved field before it opens anything */
    co.reserved[1] = 1;
    qfmt_error e;
    qfmt_convert_result res;
    cr_expect_eq(qfmt_convert_hf("/nonexistent-src", "/nonexistent-dir/out.qfmt", &co, &res, &e), QFMT_E_ARG);
    cr_expect_eq(res.tensors, 0u);
    /* and one in its qfmt_convert_types */
    co.reserved[1] = 0;
    qfmt_convert_types ct = QFMT_CONVERT_TYPES_INIT;
    for (size_t k = 0; k < 4; k++) cr_expect_eq(ct.reserved[k], 0u);
    ct.reserved[3] = 1;
    co.types = &ct;
    cr_expect_eq(qfmt_convert_hf("/nonexistent-src", "/nonexistent-dir/out.qfmt", &co, &res, &e), QFMT_E_ARG);
    co.types = NULL;
    /* qfmt_family_tensors refuses hyperparameters with a non-zero reserved field */
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.vocab = 8, h.d = 4, h.layers = 1, h.heads = 1, h.kv_heads = 1, h.head_dim = 4, h.ffn = 8, h.ctx = 4;
    h.reserved[7] = 1;
    cr_expect_eq(qfmt_family_tensors(qfmt_family_at(0), &h, NULL, NULL, &e), QFMT_E_ARG);
    /* the forward pass refuses run options with one: checked before the model is used */
    ro.reserved[0] = 1;
    int32_t id = 0;
    cr_expect_eq(qfmt_model_forward((qfmt_model *)(void *)&h, &id, 1, NULL, NULL, &ro, &e), QFMT_E_ARG);
}
