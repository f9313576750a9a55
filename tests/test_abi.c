/*
 * test_abi.c - the binary layout of every public struct of qfmt.h and qfmt_model.h, pinned
 * (lz4's tests/abiTest.c in spirit). A program compiled against one 0.x release passes these
 * structs by pointer to the library it runs with; a change of size, alignment or field offset
 * breaks it silently. So a layout change must come with a QFMT_VERSION_MAJOR bump and a new
 * table here; this test fails on any change made without one. The figures are those of the
 * x86-64 / AArch64 LP64 ABI (other targets skip the test).
 */
#include "test_helpers.h"

#include <stddef.h>

#include "qfmt_model.h"

typedef struct {
    const char *type, *field; /* field NULL: the struct itself */
    size_t offset_or_size, size_or_align;
    size_t got_a, got_b;
} abi_row;

#define S(T, size, align) {#T, NULL, size, align, sizeof(T), _Alignof(T)}
#define F(T, f, off, size) {#T, #f, off, size, offsetof(T, f), sizeof(((T *)0)->f)}

#if QFMT_VERSION_MAJOR == 0 && defined(__LP64__)
static const abi_row rows[] = {
    S(qfmt_error, 656, 8),
    F(qfmt_error, code, 0, 4),
    F(qfmt_error, sys_errno, 4, 4),
    F(qfmt_error, offset, 8, 8),
    F(qfmt_error, path, 16, 256),
    F(qfmt_error, tensor, 272, 128),
    F(qfmt_error, message, 400, 256),
    S(qfmt_allocator, 24, 8),
    F(qfmt_allocator, alloc, 0, 8),
    F(qfmt_allocator, free, 8, 8),
    F(qfmt_allocator, ctx, 16, 8),
    S(qfmt_type_traits, 24, 8),
    F(qfmt_type_traits, name, 0, 8),
    F(qfmt_type_traits, block_elems, 8, 4),
    F(qfmt_type_traits, block_bytes, 12, 4),
    F(qfmt_type_traits, is_float, 16, 1),
    S(qfmt_quant_opts, 12, 4),
    F(qfmt_quant_opts, threads, 0, 4),
    F(qfmt_quant_opts, quality, 4, 4),
    F(qfmt_quant_opts, kernel, 8, 4),
    S(qfmt_open_opts, 16, 8),
    F(qfmt_open_opts, alloc, 0, 8),
    F(qfmt_open_opts, verify_checksums, 8, 1),
    S(qfmt_file_info, 104, 8),
    F(qfmt_file_info, version_major, 0, 2),
    F(qfmt_file_info, version_minor, 2, 2),
    F(qfmt_file_info, required_features, 4, 4),
    F(qfmt_file_info, optional_features, 8, 4),
    F(qfmt_file_info, alignment, 12, 4),
    F(qfmt_file_info, file_size, 16, 8),
    F(qfmt_file_info, tensor_count, 24, 8),
    F(qfmt_file_info, metadata_count, 32, 8),
    F(qfmt_file_info, data_offset, 40, 8),
    F(qfmt_file_info, data_size, 48, 8),
    F(qfmt_file_info, metadata_offset, 56, 8),
    F(qfmt_file_info, metadata_size, 64, 8),
    F(qfmt_file_info, directory_offset, 72, 8),
    F(qfmt_file_info, directory_size, 80, 8),
    F(qfmt_file_info, header_checksum, 88, 8),
    F(qfmt_file_info, index_checksum, 96, 8),
    S(qfmt_tensor_info, 128, 8),
    F(qfmt_tensor_info, name, 0, 8),
    F(qfmt_tensor_info, type, 8, 4),
    F(qfmt_tensor_info, codec, 12, 4),
    F(qfmt_tensor_info, ndim, 16, 4),
    F(qfmt_tensor_info, dims, 24, 64),
    F(qfmt_tensor_info, nelements, 88, 8),
    F(qfmt_tensor_info, offset, 96, 8),
    F(qfmt_tensor_info, stored_size, 104, 8),
    F(qfmt_tensor_info, raw_size, 112, 8),
    F(qfmt_tensor_info, checksum, 120, 8),
    S(qfmt_value, 24, 8),
    F(qfmt_value, type, 0, 4),
    F(qfmt_value, v, 8, 16),
    S(qfmt_write_opts, 16, 8),
    F(qfmt_write_opts, alloc, 0, 8),
    F(qfmt_write_opts, alignment, 8, 4),
    F(qfmt_write_opts, no_fsync, 12, 1),
    S(qfmt_tensor_desc, 88, 8),
    F(qfmt_tensor_desc, name, 0, 8),
    F(qfmt_tensor_desc, type, 8, 4),
    F(qfmt_tensor_desc, ndim, 12, 4),
    F(qfmt_tensor_desc, dims, 16, 64),
    F(qfmt_tensor_desc, codec, 80, 4),
    F(qfmt_tensor_desc, zstd_level, 84, 4),
    S(qfmt_st_tensor, 120, 8),
    F(qfmt_st_tensor, name, 0, 8),
    F(qfmt_st_tensor, dtype, 8, 8),
    F(qfmt_st_tensor, type, 16, 4),
    F(qfmt_st_tensor, ndim, 20, 4),
    F(qfmt_st_tensor, dims, 24, 64),
    F(qfmt_st_tensor, nelements, 88, 8),
    F(qfmt_st_tensor, data, 96, 8),
    F(qfmt_st_tensor, size, 104, 8),
    F(qfmt_st_tensor, offset, 112, 8),
    S(qfmt_model_hparams, 112, 8),
    F(qfmt_model_hparams, arch, 0, 4),
    F(qfmt_model_hparams, family, 8, 8),
    F(qfmt_model_hparams, vocab, 16, 8),
    F(qfmt_model_hparams, d, 24, 8),
    F(qfmt_model_hparams, layers, 32, 8),
    F(qfmt_model_hparams, heads, 40, 8),
    F(qfmt_model_hparams, kv_heads, 48, 8),
    F(qfmt_model_hparams, head_dim, 56, 8),
    F(qfmt_model_hparams, ffn, 64, 8),
    F(qfmt_model_hparams, ctx, 72, 8),
    F(qfmt_model_hparams, type_vocab, 80, 8),
    F(qfmt_model_hparams, eps, 88, 8),
    F(qfmt_model_hparams, rope_theta, 96, 8),
    F(qfmt_model_hparams, rope_freq_type, 104, 4),
    F(qfmt_model_hparams, causal, 108, 1),
    S(qfmt_run_opts, 8, 4),
    F(qfmt_run_opts, threads, 0, 4),
    F(qfmt_run_opts, exact, 4, 1),
    S(qfmt_family_tensor, 40, 8),
    F(qfmt_family_tensor, name, 0, 8),
    F(qfmt_family_tensor, ndim, 8, 4),
    F(qfmt_family_tensor, dims, 16, 16),
    F(qfmt_family_tensor, optional, 32, 1),
    F(qfmt_family_tensor, quantize, 33, 1),
    F(qfmt_family_tensor, conv1d, 34, 1),
};
#define HAVE_TABLE 1
#endif

Test(abi, public_struct_layouts_match_the_major_version) {
#ifdef HAVE_TABLE
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const abi_row *r = &rows[i];
        if (!r->field) {
            cr_expect_eq(r->got_a, r->offset_or_size, "sizeof(%s) is %zu, the ABI of %d.x says %zu", r->type, r->got_a,
                         QFMT_VERSION_MAJOR, r->offset_or_size);
            cr_expect_eq(r->got_b, r->size_or_align, "_Alignof(%s) is %zu, the ABI says %zu", r->type, r->got_b,
                         r->size_or_align);
        } else {
            cr_expect_eq(r->got_a, r->offset_or_size, "%s.%s is at offset %zu, the ABI of %d.x says %zu", r->type,
                         r->field, r->got_a, QFMT_VERSION_MAJOR, r->offset_or_size);
            cr_expect_eq(r->got_b, r->size_or_align, "%s.%s has size %zu, the ABI says %zu", r->type, r->field,
                         r->got_b, r->size_or_align);
        }
    }
#else
    cr_skip_test("no ABI table for this target or major version");
#endif
}

/* The enums whose values are ABI (append only). */
Test(abi, pinned_enum_values) {
    cr_assert_eq(QFMT_OK, 0);
    cr_assert_eq(QFMT_E_EXISTS, 13);
    cr_assert_eq(QFMT_TYPE_Q4_0, 2);
    cr_assert_eq(QFMT_TYPE_Q8_0, 8);
    cr_assert_eq(QFMT_TYPE_Q8_Z, 258);
    cr_assert_eq(QFMT_TYPE_Q4_Z, 259);
    cr_assert_eq(QFMT_CPU_AVX2, 1u);
    cr_assert_eq(QFMT_CPU_AVX512_VNNI, 2u);
    cr_assert_eq(QFMT_ARCH_GPT2, 0);
    cr_assert_eq(QFMT_ARCH_LLAMA, 1);
    cr_assert_eq(QFMT_ARCH_BERT, 2);
}
