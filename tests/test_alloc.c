/*
 * test_alloc.c - the allocator hook: every allocation goes back through it, and failing the
 * n-th allocation (once, or from then on) makes open and write fail cleanly with QFMT_E_NOMEM,
 * leaking nothing and leaving nothing under the final name.
 */
#include "test_helpers.h"

/* Everything a reader user does; returns the first failure. */
static qfmt_status use_reader(qfmt_reader *r) {
    qfmt_error e;
    qfmt_status s;
    uint8_t buf[1024];
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if ((s = qfmt_tensor_get_info(r, i, &ti, &e))) return s;
        uint64_t idx;
        if ((s = qfmt_tensor_find(r, ti.name, &idx, &e))) return s;
        if (ti.raw_size <= sizeof buf && (s = qfmt_tensor_read(r, i, buf, ti.raw_size, true, &e)))
            return s;
        if ((s = qfmt_tensor_verify(r, i, &e))) return s;
    }
    for (uint64_t i = 0; i < qfmt_meta_count(r); i++) {
        const char *k;
        qfmt_value v;
        if ((s = qfmt_meta_get_entry(r, i, &k, &v, &e))) return s;
        if (v.type == QFMT_META_ARRAY)
            for (uint64_t j = 0; j < v.v.arr.count; j++) {
                qfmt_value ev;
                if ((s = qfmt_meta_array_get(r, k, j, &ev, &e))) return s;
            }
    }
    /* one thread: th_counting is not thread-safe (test_fault.c has a locked allocator for
     * verify's threads) */
    return qfmt_reader_verify(r, 1, &e);
}

Test(alloc, counting_reader_balanced) {
    size_t size;
    uint8_t *b = th_sample_bytes(&size);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/s.qfmt", dir);
    th_write_file(path, b, size);
    for (int from_file = 0; from_file < 2; from_file++) {
        th_counting c = {0};
        qfmt_allocator a = th_allocator(&c);
        qfmt_open_opts oo = {0};
        oo.alloc = &a;
        oo.verify_checksums = from_file;
        qfmt_reader *r = NULL;
        qfmt_error e;
        if (from_file) TH_OKE(qfmt_reader_open(&r, path, &oo, &e), e);
        else TH_OKE(qfmt_reader_open_memory(&r, b, size, &oo, &e), e);
        cr_assert_gt(c.total, 0, "the reader allocates through the hook");
        cr_assert_eq(use_reader(r), QFMT_OK);
        qfmt_reader_close(r);
        cr_assert_eq(c.live, 0, "%ld allocations not freed", c.live);
        cr_assert_eq(c.bad_frees, 0, "freed pointers the allocator did not give");
    }
    free(b);
    th_rmtree(dir);
}

Test(alloc, counting_writer_balanced) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/s.qfmt", dir);
    for (int finish = 0; finish < 2; finish++) {
        th_counting c = {0};
        qfmt_allocator a = th_allocator(&c);
        qfmt_write_opts wo = {0};
        wo.alloc = &a;
        wo.no_fsync = true;
        qfmt_error e;
        if (finish) {
            TH_OKE(th_write_sample_opts(path, &wo, &e), e);
        } else {
            qfmt_writer *w = NULL;
            TH_OKE(qfmt_writer_create(&w, path, &wo, &e), e);
            TH_OKE(qfmt_writer_set_u32(w, "k", 1, &e), e);
            qfmt_writer_free(w);
        }
        cr_assert_gt(c.total, 0, "the writer allocates through the hook");
        cr_assert_eq(c.live, 0, "%ld allocations not freed", c.live);
        cr_assert_eq(c.bad_frees, 0);
    }
    th_rmtree(dir);
}

/* Fails allocation n (once, or persistently) until the operation runs through. */
static void fail_nth_open(bool persist, bool from_file) {
    size_t size;
    uint8_t *b = th_sample_bytes(&size);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/s.qfmt", dir);
    th_write_file(path, b, size);
    long n;
    int nomem = 0;
    for (n = 1; n < 100000; n++) {
        th_counting c = {0};
        c.fail_at = n;
        c.persist = persist;
        qfmt_allocator a = th_allocator(&c);
        qfmt_open_opts oo = {0};
        oo.alloc = &a;
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = from_file ? qfmt_reader_open(&r, path, &oo, &e)
                                  : qfmt_reader_open_memory(&r, b, size, &oo, &e);
        if (s == QFMT_OK) {
            s = use_reader(r);
            qfmt_reader_close(r);
        } else {
            cr_assert_null(r, "n=%ld", n);
            cr_assert_eq(e.code, s);
            cr_assert_neq(e.message[0], 0);
        }
        cr_assert_eq(c.live, 0, "n=%ld: %ld allocations leaked (status %d)", n, c.live, (int)s);
        cr_assert_eq(c.bad_frees, 0, "n=%ld", n);
        if (c.failed == 0) {
            cr_assert_eq(s, QFMT_OK, "n=%ld: no allocation failed, yet %d", n, (int)s);
            break;
        }
        cr_assert(s == QFMT_E_NOMEM || s == QFMT_OK,
                  "n=%ld: a failed allocation gave %d (%s), not QFMT_E_NOMEM", n, (int)s,
                  qfmt_strerror(s));
        if (s == QFMT_E_NOMEM) nomem++;
    }
    cr_assert_lt(n, 100000);
    cr_assert_gt(nomem, 0, "at least the first allocation's failure is reported");
    free(b);
    th_rmtree(dir);
}

Test(alloc, fail_nth_open_memory_once) { fail_nth_open(false, false); }
Test(alloc, fail_nth_open_memory_persist) { fail_nth_open(true, false); }
Test(alloc, fail_nth_open_file_once) { fail_nth_open(false, true); }
Test(alloc, fail_nth_open_file_persist) { fail_nth_open(true, true); }

static void fail_nth_write(bool persist, bool with_previous) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/w.qfmt", dir);
    uint8_t *prev = NULL;
    size_t prev_size = 0;
    if (with_previous) {
        th_write_file(path, "previous", 8);
        prev = th_read_file(path, &prev_size);
    }
    long n;
    int nomem = 0;
    for (n = 1; n < 100000; n++) {
        th_counting c = {0};
        c.fail_at = n;
        c.persist = persist;
        qfmt_allocator a = th_allocator(&c);
        qfmt_write_opts wo = {0};
        wo.alloc = &a;
        wo.no_fsync = true;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = th_write_sample_opts(path, &wo, &e);
        cr_assert_eq(c.live, 0, "n=%ld: %ld allocations leaked (status %d)", n, c.live, (int)s);
        cr_assert_eq(c.bad_frees, 0, "n=%ld", n);
        if (s == QFMT_OK) {
            cr_assert_eq(c.failed, 0, "n=%ld: an allocation failed, yet the write succeeded", n);
            break;
        }
        cr_assert_eq(s, QFMT_E_NOMEM, "n=%ld: %d (%s): %s", n, (int)s, qfmt_strerror(s),
                     e.message);
        cr_assert_eq(e.code, QFMT_E_NOMEM);
        nomem++;
        /* nothing new under the final name, no temporary left */
        char first[256] = "";
        int entries = th_count_entries(dir, first, sizeof first);
        if (with_previous) {
            cr_assert_eq(entries, 1, "n=%ld: left behind files (first: %s)", n, first);
            size_t sz;
            uint8_t *now = th_read_file(path, &sz);
            cr_assert(sz == prev_size && !memcmp(now, prev, sz), "n=%ld: previous file changed",
                      n);
            free(now);
        } else {
            cr_assert_eq(entries, 0, "n=%ld: left behind '%s'", n, first);
        }
    }
    cr_assert_lt(n, 100000);
    cr_assert_gt(nomem, 0);
    /* the successful run wrote a good file */
    qfmt_reader *r = th_open_path(path);
    qfmt_error e;
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    cr_assert_eq(qfmt_tensor_count(r), 5u);
    qfmt_reader_close(r);
    free(prev);
    th_rmtree(dir);
}

Test(alloc, fail_nth_write_once) { fail_nth_write(false, false); }
Test(alloc, fail_nth_write_persist) { fail_nth_write(true, false); }
Test(alloc, fail_nth_write_over_previous) { fail_nth_write(false, true); }
