/*
 * test_export.c - the safetensors writer (libqfmt/src/export/safetensors.c): what it writes reads
 * back through qfmt_st_open with the same names, dtypes, shapes and bytes; the header is the
 * one cJSON's printer gave the CLI before (known answer); every refusal comes before anything
 * is on disk; the final name never holds a partial file. Fault injection: tests/test_fault.c.
 */
#include "test_helpers.h"

static qfmt_st_tensor_desc desc(const char *name, uint32_t type, uint32_t ndim, uint64_t d0, uint64_t d1) {
    qfmt_st_tensor_desc t = QFMT_ST_TENSOR_DESC_INIT;
    t.name = name;
    t.type = type;
    t.ndim = ndim;
    t.dims[0] = d0;
    t.dims[1] = d1;
    return t;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name) {
    snprintf(out, cap, "%s/%s", dir, name);
}

Test(st_writer, dtype_names) {
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_F32), "F32");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_F16), "F16");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_BF16), "BF16");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_F64), "F64");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_I8), "I8");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_I16), "I16");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_I32), "I32");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_I64), "I64");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_U8), "U8");
    cr_assert_str_eq(qfmt_st_dtype_name(QFMT_TYPE_BOOL), "BOOL");
    cr_assert_null(qfmt_st_dtype_name(QFMT_TYPE_Q8_0));
    cr_assert_null(qfmt_st_dtype_name(QFMT_TYPE_Q4_Z));
    cr_assert_null(qfmt_st_dtype_name(12345));
}

/* Every dtype, names that need JSON escapes, a scalar and an empty tensor, data in odd pieces. */
Test(st_writer, round_trip_through_st_open) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    path_in(path, sizeof path, dir, "out.safetensors");
    static const uint32_t types[] = {QFMT_TYPE_F32, QFMT_TYPE_F16, QFMT_TYPE_BF16, QFMT_TYPE_F64,
                                     QFMT_TYPE_I8,  QFMT_TYPE_I16, QFMT_TYPE_I32,  QFMT_TYPE_I64,
                                     QFMT_TYPE_U8,  QFMT_TYPE_BOOL};
    enum { NT = sizeof types / sizeof types[0], EXTRA = 4 };
    static const char *const odd[EXTRA] = {"quote\" back\\slash", "new\nline\ttab\x01", "caf\xc3\xa9",
                                           "empty"};
    qfmt_st_tensor_desc t[NT + EXTRA];
    char names[NT][16];
    uint8_t *data[NT + EXTRA];
    uint64_t sizes[NT + EXTRA];
    for (size_t i = 0; i < NT; i++) {
        snprintf(names[i], sizeof names[i], "t%zu", i);
        t[i] = desc(names[i], types[i], 2, 3 + i, 5);
        cr_assert_eq(qfmt_type_size(types[i], (3 + i) * 5, &sizes[i]), QFMT_OK);
    }
    t[NT + 0] = desc(odd[0], QFMT_TYPE_I64, 0, 0, 0); /* a scalar: one value */
    sizes[NT + 0] = 8;
    t[NT + 1] = desc(odd[1], QFMT_TYPE_U8, 1, 3, 0);
    sizes[NT + 1] = 3;
    t[NT + 2] = desc(odd[2], QFMT_TYPE_F32, 1, 1, 0);
    sizes[NT + 2] = 4;
    t[NT + 3] = desc(odd[3], QFMT_TYPE_F32, 2, 0, 7); /* no elements, no bytes */
    sizes[NT + 3] = 0;
    for (size_t i = 0; i < NT + EXTRA; i++) {
        data[i] = malloc(sizes[i] + 1);
        th_fill_random(data[i], (size_t)sizes[i], 40 + i);
    }
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_writer_begin(&w, path, t, NT + EXTRA, NULL, &e), e);
    const char *tmp = qfmt_st_writer_temp_path(w);
    cr_assert_not_null(tmp);
    cr_assert(th_exists(tmp));
    cr_assert(!th_exists(path), "nothing under the final name before commit");
    for (size_t i = 0; i < NT + EXTRA; i++) /* in pieces of 7 bytes, across tensor boundaries */
        for (uint64_t at = 0; at < sizes[i]; at += 7)
            TH_OKE(qfmt_st_writer_write(w, data[i] + at, (size_t)(sizes[i] - at < 7 ? sizes[i] - at : 7), &e), e);
    TH_OKE(qfmt_st_writer_commit(w, &e), e);
    cr_assert_null(qfmt_st_writer_temp_path(w));
    qfmt_st_writer_free(w);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "only the file: no temporary left");

    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, path, NULL, &e), e);
    cr_assert_eq(qfmt_st_count(f), NT + EXTRA);
    cr_assert_str_eq(qfmt_st_metadata(f, "format"), "pt");
    for (size_t i = 0; i < NT + EXTRA; i++) {
        uint64_t idx;
        TH_OKE(qfmt_st_find(f, t[i].name, &idx, &e), e);
        cr_assert_eq(idx, i, "tensors in the order given");
        qfmt_st_tensor st;
        TH_OKE(qfmt_st_get(f, idx, &st, &e), e);
        cr_assert_str_eq(st.name, t[i].name);
        cr_assert_str_eq(st.dtype, qfmt_st_dtype_name(t[i].type));
        cr_assert_eq(st.type, t[i].type);
        cr_assert_eq(st.ndim, t[i].ndim);
        for (uint32_t d = 0; d < st.ndim; d++) cr_assert_eq(st.dims[d], t[i].dims[d]);
        cr_assert_eq(st.size, sizes[i]);
        cr_assert_eq(memcmp(st.data, data[i], (size_t)sizes[i]), 0, "%s: bytes", t[i].name);
        for (size_t r = 0; r < sizeof st.reserved / sizeof st.reserved[0]; r++) cr_assert_eq(st.reserved[r], 0u);
    }
    qfmt_st_tensor first;
    TH_OKE(qfmt_st_get(f, 0, &first, &e), e);
    cr_assert_eq(first.offset % 8, 0, "data starts 8-aligned");
    qfmt_st_close(f);
    for (size_t i = 0; i < NT + EXTRA; i++) free(data[i]);
    th_rmtree(dir);
}

/* The exact bytes, as the CLI's cJSON-built header had them. */
Test(st_writer, known_header) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    path_in(path, sizeof path, dir, "k.safetensors");
    qfmt_st_tensor_desc t[2] = {desc("a", QFMT_TYPE_F32, 2, 2, 3), desc("b", QFMT_TYPE_U8, 1, 2, 0)};
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_writer_begin(&w, path, t, 2, NULL, &e), e);
    uint8_t zero[26] = {0};
    TH_OKE(qfmt_st_writer_write(w, zero, 26, &e), e);
    TH_OKE(qfmt_st_writer_commit(w, &e), e);
    qfmt_st_writer_free(w);
    static const char json[] = "{\"__metadata__\":{\"format\":\"pt\"},"
                               "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                               "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[24,26]}}";
    size_t jl = sizeof json - 1, padded = (jl + 7) & ~(size_t)7, n;
    uint8_t *b = th_read_file(path, &n);
    cr_assert_eq(n, 8 + padded + 26);
    uint64_t hl = 0;
    for (int k = 0; k < 8; k++) hl |= (uint64_t)b[k] << (8 * k);
    cr_assert_eq(hl, padded);
    cr_assert_eq(memcmp(b + 8, json, jl), 0, "header: %.*s", (int)padded, (const char *)b + 8);
    for (size_t k = jl; k < padded; k++) cr_assert_eq(b[8 + k], ' ');
    free(b);
    th_rmtree(dir);
}

/* Refusals at begin: the right code and context, *out NULL, nothing on disk. */
Test(st_writer, begin_refuses_bad_lists) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    path_in(path, sizeof path, dir, "x.safetensors");
    struct {
        qfmt_st_tensor_desc t[2];
        size_t n;
        qfmt_status want;
        const char *tensor;
    } cases[] = {
        {{desc("a", QFMT_TYPE_F32, 1, 4, 0), desc("a", QFMT_TYPE_U8, 1, 1, 0)}, 2, QFMT_E_EXISTS, "a"},
        {{desc("__metadata__", QFMT_TYPE_F32, 1, 4, 0)}, 1, QFMT_E_ARG, "__metadata__"},
        {{desc("q", QFMT_TYPE_Q8_0, 1, 32, 0)}, 1, QFMT_E_UNSUPPORTED, "q"},
        {{desc("", QFMT_TYPE_F32, 1, 4, 0)}, 1, QFMT_E_ARG, ""},
        {{desc("bad\xff", QFMT_TYPE_F32, 1, 4, 0)}, 1, QFMT_E_ARG, NULL},
        {{desc("nine", QFMT_TYPE_F32, 9, 4, 0)}, 1, QFMT_E_ARG, "nine"},
        {{desc("huge", QFMT_TYPE_F32, 2, 1ull << 30, 1ull << 30)}, 1, QFMT_E_RANGE, "huge"},
        {{desc("wide", QFMT_TYPE_U8, 1, (1ull << 53) + 1, 0)}, 1, QFMT_E_RANGE, "wide"},
        {{desc("r", QFMT_TYPE_F32, 1, 4, 0)}, 1, QFMT_E_ARG, "r"}, /* reserved set below */
    };
    cases[8].t[0].reserved[3] = 1;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qfmt_st_writer *w = (qfmt_st_writer *)(uintptr_t)1;
        qfmt_error e;
        qfmt_status s = qfmt_st_writer_begin(&w, path, cases[i].t, cases[i].n, NULL, &e);
        cr_assert_eq(s, cases[i].want, "case %zu: %d, want %d (%s)", i, (int)s, (int)cases[i].want,
                     e.message);
        cr_assert_eq(e.code, s);
        cr_assert_null(w, "case %zu", i);
        cr_assert_neq(e.message[0], 0);
        cr_assert_str_eq(e.path, path);
        if (cases[i].tensor) cr_assert_str_eq(e.tensor, cases[i].tensor, "case %zu", i);
        cr_assert_eq(th_count_entries(dir, NULL, 0), 0, "case %zu: left a file", i);
    }
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    cr_assert_eq(qfmt_st_writer_begin(&w, NULL, NULL, 0, NULL, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_st_writer_begin(&w, path, NULL, 1, NULL, &e), QFMT_E_ARG);
    char missing[PATH_MAX + 64];
    path_in(missing, sizeof missing, dir, "no/such/dir.safetensors");
    cr_assert_eq(qfmt_st_writer_begin(&w, missing, NULL, 0, NULL, &e), QFMT_E_IO);
    cr_assert_eq(e.sys_errno, ENOENT);
    th_rmtree(dir);
}

/* Too many bytes: refused, nothing written, the writer still usable. Too few: commit fails,
 * the temporary file goes, a previous file stays. Calls after commit: QFMT_E_STATE. */
Test(st_writer, byte_count_is_enforced) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    path_in(path, sizeof path, dir, "y.safetensors");
    static const char old[] = "previous";
    th_write_file(path, old, sizeof old);
    qfmt_st_tensor_desc t = desc("v", QFMT_TYPE_F32, 1, 4, 0);
    float v[5] = {1, 2, 3, 4, 5};
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_writer_begin(&w, path, &t, 1, NULL, &e), e);
    cr_assert_eq(qfmt_st_writer_write(w, v, sizeof v, &e), QFMT_E_ARG);
    cr_assert_str_eq(e.path, path);
    TH_OKE(qfmt_st_writer_write(w, v, 8, &e), e);
    cr_assert_eq(qfmt_st_writer_commit(w, &e), QFMT_E_STATE, "8 of 16 bytes");
    cr_assert_null(qfmt_st_writer_temp_path(w));
    cr_assert_eq(qfmt_st_writer_write(w, v, 8, &e), QFMT_E_STATE);
    qfmt_st_writer_free(w);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1);
    size_t n;
    uint8_t *b = th_read_file(path, &n);
    cr_assert(n == sizeof old && memcmp(b, old, n) == 0, "previous file untouched");
    free(b);

    /* free without commit: the temporary file goes too */
    TH_OKE(qfmt_st_writer_begin(&w, path, &t, 1, NULL, &e), e);
    TH_OKE(qfmt_st_writer_write(w, v, 16, &e), e);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 2);
    qfmt_st_writer_free(w);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1);
    qfmt_st_writer_free(NULL);

    /* committed: replaces the old file; later calls are out of order */
    TH_OKE(qfmt_st_writer_begin(&w, path, &t, 1, NULL, &e), e);
    TH_OKE(qfmt_st_writer_write(w, v, 16, &e), e);
    TH_OKE(qfmt_st_writer_commit(w, &e), e);
    cr_assert_eq(qfmt_st_writer_commit(w, &e), QFMT_E_STATE);
    cr_assert_eq(qfmt_st_writer_write(w, v, 0, &e), QFMT_E_STATE);
    qfmt_st_writer_free(w);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, path, NULL, &e), e);
    qfmt_st_tensor st;
    TH_OKE(qfmt_st_get(f, 0, &st, &e), e);
    cr_assert_eq(memcmp(st.data, v, 16), 0);
    qfmt_st_close(f);
    th_rmtree(dir);
}

/* No tensors at all: a header holding only the metadata. */
Test(st_writer, no_tensors) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    path_in(path, sizeof path, dir, "z.safetensors");
    qfmt_st_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_st_writer_begin(&w, path, NULL, 0, NULL, &e), e);
    TH_OKE(qfmt_st_writer_commit(w, &e), e);
    qfmt_st_writer_free(w);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open(&f, path, NULL, &e), e);
    cr_assert_eq(qfmt_st_count(f), 0u);
    qfmt_st_close(f);
    th_rmtree(dir);
}
