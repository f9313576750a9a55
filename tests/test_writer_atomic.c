/*
 * test_writer_atomic.c - the writer never leaves a partial file under the final name: a writer
 * SIGKILLed at many points, a full disk (RLIMIT_FSIZE), a writer freed without finish, bad
 * directories, and calls out of order.
 */
#include "test_helpers.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#define NT 200
#define TSZ (64 * 1024)

static void gen_fill(uint8_t *buf, uint32_t gen, uint32_t i) {
    memset(buf, (int)(gen * 7 + i), TSZ);
    th_put32(buf, gen);
    th_put32(buf + 4, i);
    th_put32(buf + TSZ - 4, gen ^ i);
}

/* Writes generation `gen` of the model (NT tensors of TSZ bytes), fsync on. */
static qfmt_status write_gen(const char *path, uint32_t gen, qfmt_error *e) {
    qfmt_writer *w = NULL;
    qfmt_status s = qfmt_writer_create(&w, path, NULL, e);
    if (s) return s;
    uint8_t *buf = malloc(TSZ);
    if (!buf) {
        qfmt_writer_free(w);
        return QFMT_E_NOMEM;
    }
    char name[32];
    uint64_t dims[1] = {TSZ};
    if ((s = qfmt_writer_set_u32(w, "gen", gen, e))) goto out;
    for (uint32_t i = 0; i < NT; i++) {
        snprintf(name, sizeof name, "t.%u", i);
        gen_fill(buf, gen, i);
        qfmt_tensor_desc d = th_desc(name, QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
        if ((s = qfmt_writer_add_tensor(w, &d, buf, TSZ, e))) goto out;
    }
    s = qfmt_writer_finish(w, e);
out:
    qfmt_writer_free(w);
    free(buf);
    return s;
}

/* The file at path must be a complete generation: opens, verifies, content matches. */
static uint32_t check_gen_file(const char *path) {
    qfmt_reader *r = th_open_path(path);
    qfmt_error e;
    TH_OKE(qfmt_reader_verify(r, 2, &e), e);
    uint32_t gen = 0;
    TH_OKE(qfmt_meta_get_u32(r, "gen", &gen, &e), e);
    cr_assert_eq(qfmt_tensor_count(r), NT);
    uint8_t *want = malloc(TSZ);
    cr_assert_not_null(want);
    const uint32_t idx[] = {0, 1, NT / 2, NT - 1};
    for (size_t k = 0; k < 4; k++) {
        const void *v;
        uint64_t vs;
        TH_OKE(qfmt_tensor_view(r, idx[k], &v, &vs, &e), e);
        gen_fill(want, gen, idx[k]);
        cr_assert_eq(vs, TSZ);
        cr_assert_eq(memcmp(v, want, TSZ), 0, "tensor %u of generation %u", idx[k], gen);
    }
    free(want);
    qfmt_reader_close(r);
    return gen;
}

/* Removes temp files "<base>.tmp.*" from dir; asserts nothing else but `base` is there. */
static int clean_temps(const char *dir, const char *base) {
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    char prefix[64], p[PATH_MAX + 512];
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    int n = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, base))
            continue;
        cr_assert_eq(strncmp(de->d_name, prefix, strlen(prefix)), 0, "unexpected file '%s'",
                     de->d_name);
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
        n++;
    }
    closedir(d);
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

Test(writer_atomic, sigkill_at_many_points, .timeout = 300) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/model.qfmt", dir);
    qfmt_error e;
    /* the previous complete file; its write time scales the kill points (not asserted) */
    double full = 1e9;
    for (uint32_t g = 1; g <= 3; g++) {
        double t0 = now_s();
        TH_OKE(write_gen(path, g, &e), e);
        double t = now_s() - t0;
        if (t < full) full = t;
    }
    cr_assert_eq(check_gen_file(path), 3u);

    uint32_t cur = 3;
    int killed = 0, finished = 0, temps = 0;
    const int EARLY = 6, POINTS = 40;
    for (int k = 0; k < EARLY + POINTS; k++) {
        uint32_t next = cur + 1;
        pid_t pid = fork();
        cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
        if (pid == 0) {
            qfmt_error ce;
            _exit(write_gen(path, next, &ce) == QFMT_OK ? 0 : 3);
        }
        double delay = k < EARLY ? (double)k * 20e-6 /* 0..100 us: kills very early */
                                 : full * 3.0 * (double)(k - EARLY + 1) / POINTS;
        sleep_s(delay);
        kill(pid, SIGKILL);
        int st;
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        if (WIFSIGNALED(st)) {
            cr_assert_eq(WTERMSIG(st), SIGKILL);
            killed++;
        } else {
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed to write: %d", st);
            finished++;
        }
        /* the final name holds a complete file: the previous one or the new one */
        cr_assert(th_exists(path), "kill %d: the final name vanished", k);
        uint32_t g = check_gen_file(path);
        cr_assert(g == cur || g == next, "kill %d: generation %u, expected %u or %u", k, g, cur,
                  next);
        if (WIFEXITED(st)) cr_assert_eq(g, next, "a finished writer's file is in place");
        cur = g;
        temps += clean_temps(dir, "model.qfmt");
    }
    cr_assert_gt(killed, 0, "no child was killed while writing (the test tested nothing)");
    cr_log_info("sigkill: %d killed, %d finished, %d stray temp files, full write %.3f s",
                killed, finished, temps, full);

    /* a last, uninterrupted run replaces the file */
    TH_OKE(write_gen(path, cur + 1, &e), e);
    cr_assert_eq(check_gen_file(path), cur + 1);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1);
    th_rmtree(dir);
}

/* ---- Full disk through RLIMIT_FSIZE, in a child --------------------------------------------- */
enum {
    FD_OK = 0,
    FD_NO_FAILURE = 10,
    FD_WRONG_CODE = 11,
    FD_WRONG_ERRNO = 12,
    FD_PATH_NOT_NAMED = 13,
    FD_LEFTOVERS = 14,
    FD_SETUP = 15,
    FD_NOT_ONE_LINE = 16,
};

/* mode 0: add_tensor of 4 MiB total; 1: streaming; 2: fails in finish (big metadata). */
static int full_disk_child(const char *dir, const char *path, int mode) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit rl = {1 << 20, 1 << 20};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) return FD_SETUP;
    qfmt_writer *w = NULL;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_write_opts wo = {0};
    wo.no_fsync = true;
    uint8_t *buf = malloc(1 << 20);
    if (!buf) return FD_SETUP;
    th_fill_random(buf, 1 << 20, 5);
    qfmt_status s = qfmt_writer_create(&w, path, &wo, &e);
    if (s) goto done;
    if (mode == 2) {
        /* tensors fit below the limit; the metadata does not */
        uint64_t dims[1] = {(1 << 20) - 8192};
        qfmt_tensor_desc d = th_desc("t", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
        if ((s = qfmt_writer_add_tensor(w, &d, buf, dims[0], &e))) goto done;
        char *big = malloc(65536);
        if (!big) return FD_SETUP;
        memset(big, 'm', 65536);
        s = qfmt_writer_set_string(w, "big", big, 65536, &e);
        free(big);
        if (s) goto done;
        s = qfmt_writer_finish(w, &e);
        goto done;
    }
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d", i);
        uint64_t dims[1] = {1 << 20};
        qfmt_tensor_desc d = th_desc(name, QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
        if (mode == 0) {
            s = qfmt_writer_add_tensor(w, &d, buf, 1 << 20, &e);
        } else {
            s = qfmt_writer_begin_tensor(w, &d, &e);
            for (size_t off = 0; !s && off < (1u << 20); off += 65536)
                s = qfmt_writer_append(w, buf + off, 65536, &e);
            if (!s) s = qfmt_writer_end_tensor(w, &e);
        }
        if (s) goto done;
    }
    s = qfmt_writer_finish(w, &e);
done:
    qfmt_writer_free(w);
    free(buf);
    if (s == QFMT_OK) return FD_NO_FAILURE;
    if (s != QFMT_E_IO || e.code != QFMT_E_IO) {
        fprintf(stderr, "full disk: status %d code %d: %s\n", (int)s, (int)e.code, e.message);
        return FD_WRONG_CODE;
    }
    if (e.sys_errno != EFBIG) {
        fprintf(stderr, "full disk: errno %d (%s), want EFBIG\n", e.sys_errno,
                strerror(e.sys_errno));
        return FD_WRONG_ERRNO;
    }
    char line[1024];
    qfmt_error_format(&e, line, sizeof line);
    if (!strstr(line, path)) {
        fprintf(stderr, "full disk: message does not name %s: %s\n", path, line);
        return FD_PATH_NOT_NAMED;
    }
    if (strchr(line, '\n')) return FD_NOT_ONE_LINE;
    if (th_count_entries(dir, NULL, 0) != 0) return FD_LEFTOVERS;
    return FD_OK;
}

static void full_disk_case(int mode) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/full.qfmt", dir);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) _exit(full_disk_child(dir, path, mode));
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "child died: status %d", st);
    static const char *const why[] = {
        [FD_NO_FAILURE] = "the write succeeded past RLIMIT_FSIZE",
        [FD_WRONG_CODE] = "the error was not QFMT_E_IO",
        [FD_WRONG_ERRNO] = "err.sys_errno was not EFBIG",
        [FD_PATH_NOT_NAMED] = "the message does not name the path",
        [FD_LEFTOVERS] = "files left in the directory",
        [FD_SETUP] = "setup failed",
        [FD_NOT_ONE_LINE] = "message not one line",
    };
    int code = WEXITSTATUS(st);
    cr_assert_eq(code, FD_OK, "mode %d: %s (exit %d)", mode,
                 code < (int)(sizeof why / sizeof why[0]) && why[code] ? why[code] : "?", code);
    char first[256] = "";
    cr_assert_eq(th_count_entries(dir, first, sizeof first), 0, "left behind: %s", first);
    th_rmtree(dir);
}

Test(writer_atomic, full_disk_add_tensor) { full_disk_case(0); }
Test(writer_atomic, full_disk_streaming) { full_disk_case(1); }
Test(writer_atomic, full_disk_in_finish) { full_disk_case(2); }

/* ---- Free without finish ------------------------------------------------------------------ */
Test(writer_atomic, free_without_finish_keeps_previous) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/model.qfmt", dir);
    qfmt_error e;
    size_t n0;
    {
        qfmt_write_opts wo = {0};
        wo.no_fsync = true;
        TH_OKE(th_write_sample_opts(path, &wo, &e), e);
    }
    uint8_t *before = th_read_file(path, &n0);

    for (int variant = 0; variant < 3; variant++) {
        qfmt_writer *w = NULL;
        TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
        if (variant >= 1) {
            uint8_t x[1000] = {0};
            uint64_t dims[1] = {1000};
            qfmt_tensor_desc dd = th_desc("x", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
            TH_OKE(qfmt_writer_add_tensor(w, &dd, x, 1000, &e), e);
            TH_OKE(qfmt_writer_set_u32(w, "k", 1, &e), e);
        }
        if (variant == 2) {
            uint64_t dims[1] = {100};
            qfmt_tensor_desc dd = th_desc("y", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dims);
            TH_OKE(qfmt_writer_begin_tensor(w, &dd, &e), e);
            uint8_t x[50] = {0};
            TH_OKE(qfmt_writer_append(w, x, 50, &e), e); /* freed mid-tensor */
        }
        /* the bytes so far sit in a temporary file beside the final name */
        char tmpname[256] = "";
        int n = th_count_entries(dir, NULL, 0);
        DIR *d = opendir(dir);
        struct dirent *de;
        while ((de = readdir(d)) != NULL)
            if (strncmp(de->d_name, "model.qfmt.tmp.", 15) == 0)
                snprintf(tmpname, sizeof tmpname, "%s", de->d_name);
        closedir(d);
        if (variant >= 1) {
            cr_assert_eq(n, 2, "variant %d: a temporary file beside the final name", variant);
            cr_assert_neq(tmpname[0], 0, "temporary named <path>.tmp.XXXXXX");
        }
        qfmt_writer_free(w);
        cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "variant %d: temp file removed", variant);
        size_t n1;
        uint8_t *after = th_read_file(path, &n1);
        cr_assert(n1 == n0 && !memcmp(before, after, n0), "previous file intact");
        free(after);
    }
    qfmt_writer_free(NULL); /* NULL is a no-op */
    free(before);
    th_rmtree(dir);
}

Test(writer_atomic, free_without_finish_no_previous) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/new.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    cr_assert(!th_exists(path), "nothing under the final name before finish");
    uint8_t x[10] = {0};
    uint64_t dims[1] = {10};
    qfmt_tensor_desc dd = th_desc("x", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
    TH_OKE(qfmt_writer_add_tensor(w, &dd, x, 10, &e), e);
    cr_assert(!th_exists(path), "nothing under the final name before finish");
    qfmt_writer_free(w);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 0);
    th_rmtree(dir);
}

/* ---- Bad destinations -------------------------------------------------------------------- */
static void expect_create_io(const char *path, int want_errno) {
    qfmt_writer *w = (qfmt_writer *)(uintptr_t)1;
    qfmt_error e;
    memset(&e, 0, sizeof e);
    qfmt_status s = qfmt_writer_create(&w, path, NULL, &e);
    cr_assert_eq(s, QFMT_E_IO, "create %s: %d %s", path, (int)s, e.message);
    cr_assert_null(w);
    cr_assert_eq(e.code, QFMT_E_IO);
    if (want_errno) cr_assert_eq(e.sys_errno, want_errno, "errno %d (%s)", e.sys_errno,
                                 strerror(e.sys_errno));
    else cr_assert_neq(e.sys_errno, 0);
    char line[1024];
    qfmt_error_format(&e, line, sizeof line);
    cr_assert_not_null(strstr(line, path), "names the path: %s", line);
}

Test(writer_atomic, bad_directories) {
    char dir[PATH_MAX], path[PATH_MAX + 64];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/no/such/dir/x.qfmt", dir);
    expect_create_io(path, ENOENT);
    /* a parent that is a regular file */
    snprintf(path, sizeof path, "%s/file", dir);
    th_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/file/x.qfmt", dir);
    expect_create_io(path, ENOTDIR);
    /* a directory nobody may write: root bypasses modes, so use /proc for root */
    if (geteuid() != 0) {
        snprintf(path, sizeof path, "%s/ro", dir);
        cr_assert_eq(mkdir(path, 0555), 0);
        snprintf(path, sizeof path, "%s/ro/x.qfmt", dir);
        expect_create_io(path, EACCES);
        snprintf(path, sizeof path, "%s/ro", dir);
        chmod(path, 0755);
    }
    expect_create_io("/proc/qfmt_test_cannot_write_here.qfmt", 0);
    th_rmtree(dir);
}

/* The final name is an existing directory: nothing may be left behind, the directory stays. */
Test(writer_atomic, final_name_is_a_directory) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/sub", dir);
    cr_assert_eq(mkdir(path, 0755), 0);
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_status s = qfmt_writer_create(&w, path, NULL, &e);
    if (s == QFMT_OK) {
        s = qfmt_writer_finish(w, &e);
        qfmt_writer_free(w);
    }
    cr_assert_eq(s, QFMT_E_IO, "writing over a directory: %d %s", (int)s, e.message);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "temp file removed");
    th_rmtree(dir);
}

/* ---- Call order -------------------------------------------------------------------------- */
static void expect_all_state(qfmt_writer *w, const char *when) {
    qfmt_error e;
    uint8_t x[4] = {0};
    uint64_t dims[1] = {4};
    qfmt_tensor_desc d = th_desc("late", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
    const char *strs[1] = {"s"};
    cr_assert_eq(qfmt_writer_set_u32(w, "late", 1, &e), QFMT_E_STATE, "%s: set_u32", when);
    cr_assert_eq(qfmt_writer_set_string(w, "late2", "x", 1, &e), QFMT_E_STATE, "%s", when);
    cr_assert_eq(qfmt_writer_set_array(w, "late3", QFMT_META_U8, x, 4, &e), QFMT_E_STATE, "%s",
                 when);
    cr_assert_eq(qfmt_writer_set_string_array(w, "late4", strs, NULL, 1, &e), QFMT_E_STATE, "%s",
                 when);
    cr_assert_eq(qfmt_writer_add_tensor(w, &d, x, 4, &e), QFMT_E_STATE, "%s: add_tensor", when);
    cr_assert_eq(qfmt_writer_begin_tensor(w, &d, &e), QFMT_E_STATE, "%s: begin", when);
    cr_assert_eq(qfmt_writer_append(w, x, 4, &e), QFMT_E_STATE, "%s: append", when);
    cr_assert_eq(qfmt_writer_end_tensor(w, &e), QFMT_E_STATE, "%s: end", when);
    memset(&e, 0, sizeof e);
    cr_assert_eq(qfmt_writer_finish(w, &e), QFMT_E_STATE, "%s: finish again", when);
    cr_assert_eq(e.code, QFMT_E_STATE);
}

Test(writer_atomic, calls_after_finish) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/s.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    TH_OKE(qfmt_writer_set_u32(w, "k", 1, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    expect_all_state(w, "after finish");
    qfmt_writer_free(w);
    /* the finished file is intact and free after finish did not remove it */
    qfmt_reader *r = th_open_path(path);
    cr_assert_eq(qfmt_meta_count(r), 1u);
    qfmt_reader_close(r);
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1);
    th_rmtree(dir);
}

Test(writer_atomic, streaming_call_order) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/o.qfmt", dir);
    qfmt_writer *w = NULL;
    qfmt_error e;
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    uint8_t x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    uint64_t dims[1] = {8};
    cr_assert_eq(qfmt_writer_append(w, x, 8, &e), QFMT_E_STATE, "append before begin");
    cr_assert_eq(qfmt_writer_end_tensor(w, &e), QFMT_E_STATE, "end before begin");
    qfmt_tensor_desc d = th_desc("s", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dims);
    TH_OKE(qfmt_writer_begin_tensor(w, &d, &e), e);
    TH_OKE(qfmt_writer_append(w, x, 3, &e), e);
    qfmt_tensor_desc d2 = th_desc("other", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dims);
    cr_assert_eq(qfmt_writer_add_tensor(w, &d2, x, 8, &e), QFMT_E_STATE, "add during a stream");
    cr_assert_eq(qfmt_writer_begin_tensor(w, &d2, &e), QFMT_E_STATE, "begin during a stream");
    TH_OKE(qfmt_writer_set_u32(w, "mid", 5, &e), e); /* metadata at any time */
    TH_OKE(qfmt_writer_append(w, x + 3, 5, &e), e);
    TH_OKE(qfmt_writer_end_tensor(w, &e), e);
    TH_OKE(qfmt_writer_add_tensor(w, &d2, x, 8, &e), e);
    TH_OKE(qfmt_writer_finish(w, &e), e);
    qfmt_writer_free(w);
    qfmt_reader *r = th_open_path(path);
    uint8_t got[8];
    TH_OKE(qfmt_tensor_read(r, 0, got, 8, true, &e), e);
    cr_assert_eq(memcmp(got, x, 8), 0);
    uint32_t mid;
    TH_OKE(qfmt_meta_get_u32(r, "mid", &mid, &e), e);
    cr_assert_eq(mid, 5u);
    cr_assert_eq(qfmt_tensor_count(r), 2u, "the rejected tensor is not in the file");
    qfmt_reader_close(r);

    /* finish with a tensor still open is refused, and nothing appears under the name */
    snprintf(path, sizeof path, "%s/o2.qfmt", dir);
    TH_OKE(qfmt_writer_create(&w, path, NULL, &e), e);
    TH_OKE(qfmt_writer_begin_tensor(w, &d, &e), e);
    TH_OKE(qfmt_writer_append(w, x, 8, &e), e);
    cr_assert_eq(qfmt_writer_finish(w, &e), QFMT_E_STATE, "finish with an open tensor");
    qfmt_writer_free(w);
    cr_assert(!th_exists(path));
    cr_assert_eq(th_count_entries(dir, NULL, 0), 1);
    th_rmtree(dir);
}
