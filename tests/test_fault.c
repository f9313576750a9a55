/*
 * test_fault.c - SQLite-style fault injection (STYLE.md section 7). Fail the n-th system call
 * of the writer (through its I/O table, qfmt_io of qfmt.h's static-linking section) or the n-th allocation (through
 * qfmt_allocator), once or from then on, and raise n until the operation runs through. After
 * every failure: the right code (QFMT_E_IO with the injected errno, or QFMT_E_NOMEM), nothing
 * leaked (allocations counted here, file descriptors too), nothing under the final name and no
 * temporary file left, or the previous file there untouched. The run that finally succeeds must
 * give a file byte-identical to a fault-free write.
 *
 * LeakSanitizer (ASan build) checks the same; Criterion does not fail a test for its report, so
 * the counts here are the assertion.
 */
#include "test_helpers.h"

#include <pthread.h>

#define QFMT_STATIC_LINKING_ONLY /* qfmt_io, qfmt_writer_create_io */
#include "qfmt.h"

#define MAX_N 100000

/* ---- A thread-safe counting allocator that fails the n-th call (once or from then on) ----- */
/* qfmt_reader_verify runs tensor checks on several threads, each allocating: hence the lock. */
typedef struct {
    pthread_mutex_t lock;
    long live, total, calls, fail_at, failed, bad_frees;
    bool persist;
} fault_alloc;

#define FA_MAGIC 0x46415554414C4C43ull

static void *fa_alloc(void *ctx, size_t size) {
    fault_alloc *a = ctx;
    pthread_mutex_lock(&a->lock);
    long call = ++a->calls;
    bool fail = a->fail_at && (call == a->fail_at || (a->persist && call > a->fail_at));
    if (fail) a->failed++;
    pthread_mutex_unlock(&a->lock);
    if (fail || size > SIZE_MAX - 16) return NULL;
    uint64_t *p = malloc(size + 16);
    if (!p) return NULL;
    p[0] = FA_MAGIC;
    p[1] = size;
    pthread_mutex_lock(&a->lock);
    a->live++;
    a->total++;
    pthread_mutex_unlock(&a->lock);
    return p + 2;
}

static void fa_free(void *ctx, void *ptr) {
    fault_alloc *a = ctx;
    if (!ptr) return;
    uint64_t *p = (uint64_t *)ptr - 2;
    pthread_mutex_lock(&a->lock);
    if (p[0] != FA_MAGIC) {
        a->bad_frees++;
        pthread_mutex_unlock(&a->lock);
        return;
    }
    p[0] = 0;
    a->live--;
    pthread_mutex_unlock(&a->lock);
    free(p);
}

static void fa_init(fault_alloc *a, long fail_at, bool persist) {
    memset(a, 0, sizeof *a);
    pthread_mutex_init(&a->lock, NULL);
    a->fail_at = fail_at;
    a->persist = persist;
}

static qfmt_allocator fa_allocator(fault_alloc *a) {
    qfmt_allocator q;
    q.alloc = fa_alloc;
    q.free = fa_free;
    q.ctx = a;
    return q;
}

/* ---- An I/O table that fails, shortens or interrupts the n-th call of one kind ------------- */
typedef enum { OP_OPEN, OP_WRITE, OP_FSYNC, OP_CLOSE, OP_RENAME, OP_UNLINK, OP_COUNT } io_op;
static const char *const op_names[OP_COUNT] = {"open", "write", "fsync", "close", "rename",
                                               "unlink"};

typedef enum {
    M_ERR,       /* the call fails with `err`, doing nothing (close: the fd is closed anyway) */
    M_SHORT_ERR, /* write only: writes half, and the next write fails with `err` */
    M_SHORT,     /* write only: writes half (at least one byte); no error */
    M_EINTR,     /* the call fails with EINTR, doing nothing; a retry succeeds */
} io_mode;

typedef struct {
    io_op op;        /* the kind of call to fail */
    long fail_at;    /* 1-based among calls of that kind; 0: never */
    bool persist;    /* from fail_at on (M_ERR, M_SHORT) */
    io_mode mode;
    int err;         /* errno to inject */
    bool fail_unlink; /* also fail every unlink (cleanup after the first failure) */
    /* observed */
    long calls[OP_COUNT];
    long injected;    /* calls that failed or were shortened */
    int injected_errno; /* the errno of the first injected failure (0: none) */
    bool arm_next_write; /* M_SHORT_ERR: fail the write after the short one */
    int open_fds;     /* opened by the writer and not yet closed */
    int dir_fd;       /* the directory's fd in fsync_parent, or -1 */
    bool dir_only;    /* every injected failure hit the directory fd (close or fsync of it) */
    bool renamed;     /* a rename succeeded */
    long bytes;       /* bytes written */
} fault_io;

static bool fi_hit(fault_io *f, io_op op) {
    long c = ++f->calls[op];
    if (f->op != op || !f->fail_at) return false;
    return c == f->fail_at || (f->persist && c > f->fail_at);
}

static void fi_note(fault_io *f, int e, bool on_dir) {
    if (f->injected == 0) f->dir_only = true;
    if (!on_dir) f->dir_only = false;
    f->injected++;
    if (!f->injected_errno) f->injected_errno = e;
}

static int fi_open(void *ctx, const char *path, int flags, mode_t mode) {
    fault_io *f = ctx;
    if (fi_hit(f, OP_OPEN)) {
        int e = f->mode == M_EINTR ? EINTR : f->err;
        fi_note(f, e, !(flags & O_CREAT)); /* the writer opens its directory without O_CREAT */
        errno = e;
        return -1;
    }
    int fd = open(path, flags, mode);
    if (fd >= 0) {
        f->open_fds++;
        if (!(flags & O_CREAT)) f->dir_fd = fd;
    }
    return fd;
}

static ssize_t fi_write(void *ctx, int fd, const void *p, size_t n) {
    fault_io *f = ctx;
    bool hit = fi_hit(f, OP_WRITE);
    if (f->arm_next_write) {
        f->arm_next_write = false;
        fi_note(f, f->err, false);
        errno = f->err;
        return -1;
    }
    if (hit) {
        switch (f->mode) {
        case M_ERR:
            fi_note(f, f->err, false);
            errno = f->err;
            return -1;
        case M_EINTR:
            fi_note(f, EINTR, false);
            errno = EINTR;
            return -1;
        case M_SHORT_ERR:
            f->arm_next_write = true;
            f->injected++;
            n = n > 1 ? n / 2 : n;
            break;
        case M_SHORT:
            f->injected++;
            n = n > 1 ? n / 2 : n;
            break;
        }
    }
    ssize_t k = write(fd, p, n);
    if (k > 0) f->bytes += k;
    return k;
}

static int fi_fsync(void *ctx, int fd) {
    fault_io *f = ctx;
    if (fi_hit(f, OP_FSYNC)) {
        fi_note(f, f->mode == M_EINTR ? EINTR : f->err, fd == f->dir_fd);
        errno = f->mode == M_EINTR ? EINTR : f->err;
        return -1;
    }
    return 0; /* durability is not what these tests are about: skip the real fsync */
}

static int fi_close(void *ctx, int fd) {
    fault_io *f = ctx;
    bool hit = fi_hit(f, OP_CLOSE);
    int rc = close(fd); /* Linux: the descriptor is gone whatever close returns */
    if (rc == 0) f->open_fds--;
    bool on_dir = fd == f->dir_fd;
    if (on_dir) f->dir_fd = -1;
    if (hit) {
        fi_note(f, f->err, on_dir);
        errno = f->err;
        return -1;
    }
    return rc;
}

static int fi_rename(void *ctx, const char *from, const char *to) {
    fault_io *f = ctx;
    if (fi_hit(f, OP_RENAME)) {
        fi_note(f, f->err, false);
        errno = f->err;
        return -1;
    }
    int rc = rename(from, to);
    if (rc == 0) f->renamed = true;
    return rc;
}

static int fi_unlink(void *ctx, const char *path) {
    fault_io *f = ctx;
    f->calls[OP_UNLINK]++;
    if (f->fail_unlink) {
        errno = EIO;
        return -1;
    }
    return unlink(path);
}

static void fi_init(fault_io *f, io_op op, long fail_at, io_mode mode, int err, bool persist) {
    memset(f, 0, sizeof *f);
    f->op = op;
    f->fail_at = fail_at;
    f->mode = mode;
    f->err = err;
    f->persist = persist;
    f->dir_fd = -1;
}

static qfmt_io fi_table(fault_io *f) {
    qfmt_io io;
    io.open = fi_open;
    io.write = fi_write;
    io.fsync = fi_fsync;
    io.close = fi_close;
    io.rename = fi_rename;
    io.unlink = fi_unlink;
    io.ctx = f;
    return io;
}

/* ---- The model written: metadata of every kind, plain and zstd tensors, whole and streamed -- */
enum {
    BIG = (3 << 20) / 2,   /* > the writer's 1 MiB buffer: written around it */
    ZWHOLE = 300 << 10,    /* compressible, add_tensor */
    ZSTREAM = 1280 << 10,  /* mostly random, begin/append/end in pieces: fills the buffer */
    PSTREAM = 1100 << 10,  /* plain, begin/append/end in pieces: fills the buffer */
    ZRAND = 70 << 10,      /* incompressible with the zstd codec: stored plain */
    PIECE = 7000,
};

typedef struct {
    float *f32;     /* 64 x 48 */
    uint8_t *big, *zwhole, *zstream, *pstream, *zrand;
} model_data;

static model_data model_make(void) {
    model_data m;
    m.f32 = malloc(64 * 48 * sizeof(float));
    m.big = malloc(BIG);
    m.zwhole = malloc(ZWHOLE);
    m.zstream = malloc(ZSTREAM);
    m.pstream = malloc(PSTREAM);
    m.zrand = malloc(ZRAND);
    cr_assert(m.f32 && m.big && m.zwhole && m.zstream && m.pstream && m.zrand);
    for (int i = 0; i < 64 * 48; i++) m.f32[i] = (float)i * 0.25f - 100.0f;
    th_fill_random(m.big, BIG, 1);
    th_fill_compressible(m.zwhole, ZWHOLE, 2);
    th_fill_random(m.zstream, ZSTREAM, 3);
    th_fill_compressible(m.zstream, 100 << 10, 3); /* zstd keeps the frame: smaller overall */
    th_fill_random(m.pstream, PSTREAM, 5);
    th_fill_random(m.zrand, ZRAND, 4);
    return m;
}

static void model_free(model_data *m) {
    free(m->f32);
    free(m->big);
    free(m->zwhole);
    free(m->zstream);
    free(m->pstream);
    free(m->zrand);
}

static uint32_t g_alignment; /* of the model's file; 0: the default */

/* Writes the model to path through `io` (NULL: the real calls) and `alloc` (NULL: malloc).
 * Returns the first failing status; err describes it. With `resume`, a call that fails with
 * QFMT_E_NOMEM is made once more (as a caller that freed some memory would): it must either
 * work, and the file come out as if nothing had happened, or be refused with QFMT_E_STATE
 * because the failure was fatal to the writer. */
static qfmt_status write_model_ex(const char *path, const model_data *m, const qfmt_io *io,
                                  const qfmt_allocator *alloc, bool fsync_on, bool resume,
                                  qfmt_error *e) {
    qfmt_write_opts wo = {0};
    wo.alloc = alloc;
    wo.alignment = g_alignment;
    wo.no_fsync = !fsync_on;
    qfmt_writer *w = (qfmt_writer *)(uintptr_t)1;
    memset(e, 0, sizeof *e);
    qfmt_status s = qfmt_writer_create_io(&w, path, &wo, io, e);
    if (s == QFMT_E_NOMEM && resume) s = qfmt_writer_create_io(&w, path, &wo, io, e);
    if (s != QFMT_OK) {
        cr_assert_null(w, "*out is NULL when create fails");
        return s;
    }
    uint64_t d2[2] = {64, 48}, dbig[1] = {BIG}, dzw[2] = {ZWHOLE / 1024, 1024},
             dzs[1] = {ZSTREAM}, dps[1] = {PSTREAM}, dzr[1] = {ZRAND}, dempty[2] = {0, 8};
    uint32_t u32s[5] = {1, 2, 3, 5, 8};
    const char *toks[3] = {"<s>", "hello", "w\xc3\xb6rld"};
    int64_t scalar = -7;
    qfmt_tensor_desc d;
    const char *fatal = NULL; /* the call a failure ended the writer in */
#define CALL(x)                                                                                  \
    do {                                                                                         \
        s = (x);                                                                                 \
        if (s == QFMT_E_NOMEM && resume) {                                                       \
            qfmt_error saved = *e;                                                               \
            qfmt_status s2 = (x);                                                                \
            if (s2 == QFMT_E_STATE) {                                                            \
                fatal = #x;                                                                      \
                *e = saved;                                                                      \
            } else {                                                                             \
                s = s2;                                                                          \
            }                                                                                    \
        }                                                                                        \
        if (s) goto out;                                                                         \
    } while (0)
    CALL(qfmt_writer_set_string(w, "general.name", "fault model", 11, e));
    CALL(qfmt_writer_set_u32(w, "model.layers", 3, e));
    d = th_desc("tok_embeddings.weight", QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, d2);
    CALL(qfmt_writer_add_tensor(w, &d, m->f32, 64 * 48 * sizeof(float), e));
    d = th_desc("big", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dbig);
    CALL(qfmt_writer_add_tensor(w, &d, m->big, BIG, e));
    CALL(qfmt_writer_set_array(w, "model.fib", QFMT_META_U32, u32s, 5, e));
    d = th_desc("zstd.whole", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 2, dzw);
    CALL(qfmt_writer_add_tensor(w, &d, m->zwhole, ZWHOLE, e));
    d = th_desc("zstd.stream", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dzs);
    CALL(qfmt_writer_begin_tensor(w, &d, e));
    CALL(qfmt_writer_set_f64(w, "model.eps", 1e-5, e)); /* mid-tensor */
    for (size_t off = 0; off < ZSTREAM; off += PIECE) {
        size_t k = ZSTREAM - off < PIECE ? ZSTREAM - off : PIECE;
        CALL(qfmt_writer_append(w, m->zstream + off, k, e));
    }
    CALL(qfmt_writer_end_tensor(w, e));
    d = th_desc("plain.stream", QFMT_TYPE_U8, QFMT_CODEC_NONE, 1, dps);
    CALL(qfmt_writer_begin_tensor(w, &d, e));
    for (size_t off = 0; off < PSTREAM; off += 3 * PIECE) {
        size_t k = PSTREAM - off < 3 * PIECE ? PSTREAM - off : 3 * PIECE;
        CALL(qfmt_writer_append(w, m->pstream + off, k, e));
    }
    CALL(qfmt_writer_end_tensor(w, e));
    d = th_desc("zstd.random", QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, dzr);
    CALL(qfmt_writer_add_tensor(w, &d, m->zrand, ZRAND, e));
    CALL(qfmt_writer_set_string_array(w, "tokenizer.tokens", toks, NULL, 3, e));
    d = th_desc("scalar", QFMT_TYPE_I64, QFMT_CODEC_NONE, 0, NULL);
    CALL(qfmt_writer_add_tensor(w, &d, &scalar, sizeof scalar, e));
    d = th_desc("empty", QFMT_TYPE_F32, QFMT_CODEC_ZSTD, 2, dempty);
    CALL(qfmt_writer_add_tensor(w, &d, m->f32, 0, e));
    CALL(qfmt_writer_set_bool(w, "model.tied", true, e));
    s = qfmt_writer_finish(w, e);
#undef CALL
out:
    if (fatal) /* qfmt.h: only a failure mid-tensor ends the writer */
        cr_assert(!strncmp(fatal, "qfmt_writer_append", 18) ||
                      !strncmp(fatal, "qfmt_writer_end_tensor", 22),
                  "QFMT_E_NOMEM in %s ended the writer", fatal);
    if (fatal) cr_assert_str_eq(e->tensor, "zstd.stream", "the error names the tensor");
    if (s == QFMT_E_IO || fatal) {
        /* an I/O failure ends the writer and removes its temporary file at once */
        cr_assert_null(qfmt_writer_temp_path(w), "no temporary file after a fatal failure");
        const char *slash = strrchr(path, '/');
        cr_assert_not_null(slash, "'%s' has no directory part", path);
        char dir[PATH_MAX];
        size_t dir_len = (size_t)(slash - path);
        cr_assert_lt(dir_len, sizeof dir, "directory of '%s' is too long", path);
        memcpy(dir, path, dir_len);
        dir[dir_len] = 0;
        char tmp_prefix[64];
        int n = snprintf(tmp_prefix, sizeof tmp_prefix, "%s.tmp.", slash + 1);
        cr_assert(n > 0 && (size_t)n < sizeof tmp_prefix, "file name '%s' is too long", slash + 1);
        DIR *dd = opendir(dir);
        cr_assert_not_null(dd);
        struct dirent *de;
        bool keep = io && ((const fault_io *)io->ctx)->fail_unlink;
        while ((de = readdir(dd)) != NULL)
            cr_assert(keep || strncmp(de->d_name, tmp_prefix, strlen(tmp_prefix)) != 0,
                      "temporary file '%s' still there before qfmt_writer_free", de->d_name);
        closedir(dd);
    }
    qfmt_writer_free(w);
    return s;
}

static qfmt_status write_model(const char *path, const model_data *m, const qfmt_io *io,
                               const qfmt_allocator *alloc, bool fsync_on, qfmt_error *e) {
    return write_model_ex(path, m, io, alloc, fsync_on, false, e);
}


/* The bytes of a fault-free write (the reference every successful faulted run must equal). */
static uint8_t *reference_bytes(const model_data *m, size_t *size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/ref.qfmt", dir);
    qfmt_error e;
    qfmt_status s = write_model(path, m, NULL, NULL, false, &e);
    cr_assert_eq(s, QFMT_OK, "reference write: %s", e.message);
    uint8_t *b = th_read_file(path, size);
    th_rmtree(dir);
    /* it is a sound file with compressed tensors in it */
    qfmt_reader *r = th_open_mem(b, *size);
    TH_OKE(qfmt_reader_verify(r, 1, &e), e);
    cr_assert_eq(qfmt_tensor_count(r), 8u);
    qfmt_tensor_info ti;
    uint64_t idx;
    TH_OKE(qfmt_tensor_find(r, "zstd.stream", &idx, &e), e);
    TH_OKE(qfmt_tensor_get_info(r, idx, &ti, &e), e);
    cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD);
    TH_OKE(qfmt_tensor_find(r, "zstd.whole", &idx, &e), e);
    TH_OKE(qfmt_tensor_get_info(r, idx, &ti, &e), e);
    cr_assert_eq(ti.codec, QFMT_CODEC_ZSTD);
    qfmt_reader_close(r);
    return b;
}

/* ---- The state of the directory after a run ------------------------------------------------ */
typedef struct {
    char dir[PATH_MAX];
    char path[PATH_MAX + 32];
    uint8_t *prev; /* the previous file under the final name, or NULL */
    size_t prev_size;
    const uint8_t *ref;
    size_t ref_size;
} scene;

static void scene_init_as(scene *sc, const char *name, bool with_previous, const uint8_t *ref,
                          size_t ref_size) {
    memset(sc, 0, sizeof *sc);
    th_mkdtemp(sc->dir);
    snprintf(sc->path, sizeof sc->path, "%s/%s", sc->dir, name);
    sc->ref = ref;
    sc->ref_size = ref_size;
    if (with_previous) {
        static const char old[] = "the previous model, which must survive every failure";
        sc->prev = th_dup(old, sizeof old);
        sc->prev_size = sizeof old;
        th_write_file(sc->path, sc->prev, sc->prev_size);
    }
}

static void scene_init(scene *sc, bool with_previous, const uint8_t *ref, size_t ref_size) {
    scene_init_as(sc, "model.qfmt", with_previous, ref, ref_size);
}

static void scene_free(scene *sc) {
    free(sc->prev);
    th_rmtree(sc->dir);
}

static bool file_equals(const char *path, const uint8_t *want, size_t want_size) {
    size_t n;
    uint8_t *b = th_read_file(path, &n);
    bool same = n == want_size && memcmp(b, want, n) == 0;
    free(b);
    return same;
}

/* After a failed run: only the previous file (untouched) or nothing. */
static void expect_untouched(const scene *sc, const char *what) {
    char first[256] = "";
    int n = th_count_entries(sc->dir, first, sizeof first);
    if (sc->prev) {
        cr_assert_eq(n, 1, "%s: %d entries, one is '%s'", what, n, first);
        cr_assert(file_equals(sc->path, sc->prev, sc->prev_size), "%s: previous file changed",
                  what);
    } else {
        cr_assert_eq(n, 0, "%s: left behind '%s'", what, first);
    }
}

/* After a successful run: exactly the new file, byte-identical to the reference. */
static void expect_reference(const scene *sc, const char *what) {
    char first[256] = "";
    int n = th_count_entries(sc->dir, first, sizeof first);
    cr_assert_eq(n, 1, "%s: %d entries, one is '%s'", what, n, first);
    cr_assert(file_equals(sc->path, sc->ref, sc->ref_size), "%s: differs from a fault-free write",
              what);
}

/* Puts the previous file (or nothing) back after a run that replaced it. */
static void scene_reset(const scene *sc) {
    if (sc->prev) th_write_file(sc->path, sc->prev, sc->prev_size);
    else unlink(sc->path);
}

/* ---- I/O fault loops ---------------------------------------------------------------------- */
typedef struct {
    long points;   /* runs in which a fault was injected */
    long failures; /* of those, runs that failed */
} loop_stats;

/* Fails the n-th `op` call for n = 1, 2, ... until a run injects nothing; checks every run. */
static loop_stats io_loop(const model_data *m, const uint8_t *ref, size_t ref_size, io_op op,
                          io_mode mode, int err, bool persist, bool with_previous) {
    scene sc;
    scene_init(&sc, with_previous, ref, ref_size);
    loop_stats st = {0, 0};
    long n;
    for (n = 1; n < MAX_N; n++) {
        char what[160];
        snprintf(what, sizeof what, "%s #%ld %s (mode %d, errno %d%s)", op_names[op], n,
                 persist ? "on" : "once", (int)mode, err, with_previous ? ", over a file" : "");
        fault_io f;
        fi_init(&f, op, n, mode, err, persist);
        qfmt_io io = fi_table(&f);
        fault_alloc fa;
        fa_init(&fa, 0, false);
        qfmt_allocator a = fa_allocator(&fa);
        qfmt_error e;
        qfmt_status s = write_model(sc.path, m, &io, &a, true, &e);
        cr_assert_eq(fa.live, 0, "%s: %ld allocations leaked", what, fa.live);
        cr_assert_eq(fa.bad_frees, 0, "%s", what);
        cr_assert_eq(f.open_fds, 0, "%s: %d file descriptors left open", what, f.open_fds);
        if (s != QFMT_OK) cr_assert_eq(e.code, s, "%s: err.code %d, returned %d", what,
                                       (int)e.code, (int)s);
        if (f.injected == 0) {
            cr_assert_eq(s, QFMT_OK, "%s: nothing injected, yet %d: %s", what, (int)s, e.message);
            expect_reference(&sc, what);
            break;
        }
        st.points++;
        bool harmless = mode == M_SHORT || mode == M_EINTR || (f.dir_only && op == OP_CLOSE);
        if (harmless) {
            /* short and interrupted writes are retried; closing a read-only directory fd can
             * lose nothing: the file must come out right all the same */
            cr_assert_eq(s, QFMT_OK, "%s: %d (%s): %s", what, (int)s, qfmt_strerror(s), e.message);
            expect_reference(&sc, what);
            scene_reset(&sc);
            continue;
        }
        st.failures++;
        cr_assert_eq(s, QFMT_E_IO, "%s: %d (%s), want QFMT_E_IO: %s", what, (int)s,
                     qfmt_strerror(s), e.message);
        cr_assert_eq(e.sys_errno, f.injected_errno, "%s: sys_errno %d, injected %d (%s)", what,
                     e.sys_errno, f.injected_errno, e.message);
        cr_assert_neq(e.message[0], 0);
        cr_assert_not_null(strstr(e.path, "model.qfmt"), "%s: err.path '%s'", what, e.path);
        if (op == OP_WRITE && n == 1 && mode == M_ERR && g_alignment == 0)
            cr_assert_str_eq(e.tensor, "big", "%s: the first write is the flush before 'big'", what);
        if (op == OP_WRITE)
            cr_assert_eq(e.offset, (uint64_t)f.bytes, "%s: failed at byte %" PRIu64 ", after %ld written",
                         what, e.offset, f.bytes);
        if (f.renamed) {
            /* only the directory's fsync can fail after the rename: the file is complete */
            cr_assert(f.dir_only, "%s: a failure after the rename that is not the directory's",
                      what);
            expect_reference(&sc, what);
            scene_reset(&sc);
        } else {
            expect_untouched(&sc, what);
        }
    }
    cr_assert_lt(n, MAX_N);
    scene_free(&sc);
    return st;
}

static model_data g_model;
static uint8_t *g_ref;
static size_t g_ref_size;

static void setup_model(void) {
    g_model = model_make();
    g_ref = reference_bytes(&g_model, &g_ref_size);
}
static void teardown_model(void) {
    model_free(&g_model);
    free(g_ref);
}

#define IO_LOOP(op, mode, err, persist, prev) \
    io_loop(&g_model, g_ref, g_ref_size, op, mode, err, persist, prev)

TestSuite(fault, .init = setup_model, .fini = teardown_model, .timeout = 300);

Test(fault, write_fails_eio_enospc) {
    static const int errs[] = {EIO, ENOSPC, EDQUOT, EFBIG};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++)
        for (int prev = 0; prev < 2; prev++) {
            loop_stats a = IO_LOOP(OP_WRITE, M_ERR, errs[i], false, prev);
            loop_stats b = IO_LOOP(OP_WRITE, M_ERR, errs[i], true, prev);
            cr_assert_geq(a.failures, 5, "the model takes several writes (%ld)", a.failures);
            cr_assert_eq(a.failures, b.failures);
            if (i == 0 && prev == 0)
                cr_log_info("write EIO/ENOSPC: %ld failure points per loop", a.failures);
        }
}

/* The largest alignment: megabytes of padding go through the buffer between tensors. */
Test(fault, write_fails_large_alignment) {
    g_alignment = QFMT_MAX_ALIGNMENT;
    free(g_ref);
    g_ref = reference_bytes(&g_model, &g_ref_size);
    loop_stats a = IO_LOOP(OP_WRITE, M_ERR, ENOSPC, false, true);
    loop_stats b = IO_LOOP(OP_WRITE, M_SHORT_ERR, EIO, false, false);
    loop_stats c = IO_LOOP(OP_WRITE, M_SHORT, 0, false, false);
    cr_assert_geq(a.failures, 8);
    cr_assert_eq(a.failures, b.failures);
    cr_assert_eq(c.failures, 0);
    cr_log_info("alignment %u: %ld write failure points, file of %zu bytes", QFMT_MAX_ALIGNMENT,
                a.failures, g_ref_size);
}

Test(fault, write_short_then_error) {
    static const int errs[] = {ENOSPC, EIO};
    for (size_t i = 0; i < 2; i++)
        for (int prev = 0; prev < 2; prev++) {
            loop_stats a = IO_LOOP(OP_WRITE, M_SHORT_ERR, errs[i], false, prev);
            cr_assert_geq(a.failures, 5);
        }
}

Test(fault, write_short_is_retried) {
    loop_stats a = IO_LOOP(OP_WRITE, M_SHORT, 0, false, false);
    loop_stats b = IO_LOOP(OP_WRITE, M_SHORT, 0, false, true);
    cr_assert_geq(a.points, 5);
    cr_assert_eq(a.failures + b.failures, 0);
    /* every write from the n-th on cut in half: many more calls, the same bytes */
    scene sc;
    scene_init(&sc, false, g_ref, g_ref_size);
    fault_io f;
    fi_init(&f, OP_WRITE, 1, M_SHORT, 0, true);
    qfmt_io io = fi_table(&f);
    qfmt_error e;
    TH_OKE(write_model(sc.path, &g_model, &io, NULL, true, &e), e);
    cr_assert_gt(f.calls[OP_WRITE], 40, "halving every write takes many calls");
    cr_assert_eq(f.open_fds, 0);
    expect_reference(&sc, "every write short");
    scene_free(&sc);
    cr_log_info("short writes: %ld single points, %ld calls when every write is halved",
                a.points, f.calls[OP_WRITE]);
}

Test(fault, write_eintr_is_retried) {
    loop_stats a = IO_LOOP(OP_WRITE, M_EINTR, 0, false, false);
    cr_assert_geq(a.points, 5);
    cr_assert_eq(a.failures, 0);
    /* open (the temporary file, the directory) and fsync (the file, the directory) likewise */
    loop_stats o = IO_LOOP(OP_OPEN, M_EINTR, 0, false, false);
    cr_assert_eq(o.points, 2);
    loop_stats f = IO_LOOP(OP_FSYNC, M_EINTR, 0, false, true);
    cr_assert_eq(f.points, 2);
    cr_log_info("EINTR: %ld writes, %ld opens, %ld fsyncs retried", a.points, o.points, f.points);
}

Test(fault, fsync_close_rename_open) {
    static const int errs[] = {EIO, ENOSPC};
    long pts[OP_COUNT] = {0};
    for (size_t i = 0; i < 2; i++)
        for (int prev = 0; prev < 2; prev++) {
            loop_stats s;
            s = IO_LOOP(OP_FSYNC, M_ERR, errs[i], false, prev);
            cr_assert_eq(s.failures, 2, "file fsync, then the directory's");
            pts[OP_FSYNC] += s.failures;
            s = IO_LOOP(OP_CLOSE, M_ERR, errs[i], false, prev);
            cr_assert_eq(s.points, 2, "the file's close, then the directory's");
            cr_assert_eq(s.failures, 1, "the directory's close loses nothing");
            pts[OP_CLOSE] += s.failures;
            s = IO_LOOP(OP_RENAME, M_ERR, errs[i], false, prev);
            cr_assert_eq(s.failures, 1);
            pts[OP_RENAME] += s.failures;
            s = IO_LOOP(OP_OPEN, M_ERR, errs[i], false, prev);
            cr_assert_eq(s.failures, 2, "the temporary file, then the directory");
            pts[OP_OPEN] += s.failures;
            /* persistent: everything of that kind from n on fails */
            s = IO_LOOP(OP_FSYNC, M_ERR, errs[i], true, prev);
            cr_assert_eq(s.failures, 2);
            s = IO_LOOP(OP_OPEN, M_ERR, EACCES, true, prev);
            cr_assert_eq(s.failures, 2);
        }
    cr_log_info("fsync %ld, close %ld, rename %ld, open %ld failure points", pts[OP_FSYNC],
                pts[OP_CLOSE], pts[OP_RENAME], pts[OP_OPEN]);
}

/* A failing unlink while cleaning up cannot remove the temporary file; the first error is the
 * one reported, and nothing appears under the final name. */
Test(fault, cleanup_unlink_fails) {
    scene sc;
    scene_init(&sc, true, g_ref, g_ref_size);
    fault_io f;
    fi_init(&f, OP_WRITE, 2, M_ERR, ENOSPC, false);
    f.fail_unlink = true;
    qfmt_io io = fi_table(&f);
    fault_alloc fa;
    fa_init(&fa, 0, false);
    qfmt_allocator a = fa_allocator(&fa);
    qfmt_error e;
    qfmt_status s = write_model(sc.path, &g_model, &io, &a, true, &e);
    cr_assert_eq(s, QFMT_E_IO);
    cr_assert_eq(e.sys_errno, ENOSPC, "the first error is reported, not the unlink's");
    cr_assert_eq(fa.live, 0);
    cr_assert_eq(f.open_fds, 0);
    cr_assert_geq(f.calls[OP_UNLINK], 1);
    cr_assert(file_equals(sc.path, sc.prev, sc.prev_size), "previous file untouched");
    cr_assert_eq(th_count_entries(sc.dir, NULL, 0), 2, "the temporary file could not go");
    scene_free(&sc);
}

/* ---- Allocation fault loops --------------------------------------------------------------- */
static loop_stats alloc_write_loop(bool persist, bool with_previous) {
    scene sc;
    scene_init(&sc, with_previous, g_ref, g_ref_size);
    loop_stats st = {0, 0};
    long n;
    for (n = 1; n < MAX_N; n++) {
        char what[96];
        snprintf(what, sizeof what, "allocation #%ld %s%s", n, persist ? "on" : "once",
                 with_previous ? ", over a file" : "");
        fault_alloc fa;
        fa_init(&fa, n, persist);
        qfmt_allocator a = fa_allocator(&fa);
        fault_io f;
        fi_init(&f, OP_WRITE, 0, M_ERR, 0, false);
        qfmt_io io = fi_table(&f);
        qfmt_error e;
        qfmt_status s = write_model(sc.path, &g_model, &io, &a, true, &e);
        cr_assert_eq(fa.live, 0, "%s: %ld allocations leaked (status %d)", what, fa.live, (int)s);
        cr_assert_eq(fa.bad_frees, 0, "%s", what);
        cr_assert_eq(f.open_fds, 0, "%s: %d descriptors left open", what, f.open_fds);
        if (fa.failed == 0) {
            cr_assert_eq(s, QFMT_OK, "%s: %d: %s", what, (int)s, e.message);
            expect_reference(&sc, what);
            break;
        }
        st.points++;
        cr_assert_eq(s, QFMT_E_NOMEM, "%s: %d (%s): %s", what, (int)s, qfmt_strerror(s),
                     e.message);
        cr_assert_eq(e.code, QFMT_E_NOMEM);
        cr_assert_neq(e.message[0], 0);
        st.failures++;
        expect_untouched(&sc, what);
    }
    cr_assert_lt(n, MAX_N);
    scene_free(&sc);
    return st;
}

/* Each allocation failing once, the failed call made again: the writer either carries on and
 * the file comes out identical, or the failure was fatal and the call is refused. */
Test(fault, alloc_write_resume) {
    scene sc;
    scene_init(&sc, true, g_ref, g_ref_size);
    long n, recovered = 0, fatal = 0;
    for (n = 1; n < MAX_N; n++) {
        char what[64];
        snprintf(what, sizeof what, "allocation #%ld, call repeated", n);
        fault_alloc fa;
        fa_init(&fa, n, false);
        qfmt_allocator a = fa_allocator(&fa);
        fault_io f;
        fi_init(&f, OP_WRITE, 0, M_ERR, 0, false);
        qfmt_io io = fi_table(&f);
        qfmt_error e;
        qfmt_status s = write_model_ex(sc.path, &g_model, &io, &a, true, true, &e);
        cr_assert_eq(fa.live, 0, "%s: %ld leaked", what, fa.live);
        cr_assert_eq(f.open_fds, 0, "%s", what);
        if (fa.failed == 0) {
            cr_assert_eq(s, QFMT_OK);
            expect_reference(&sc, what);
            break;
        }
        if (s == QFMT_OK) {
            recovered++;
            expect_reference(&sc, what);
            scene_reset(&sc);
        } else {
            fatal++;
            cr_assert_eq(s, QFMT_E_NOMEM, "%s: %d (%s): %s", what, (int)s, qfmt_strerror(s),
                         e.message);
            cr_assert_eq(e.code, QFMT_E_NOMEM);
            expect_untouched(&sc, what);
        }
    }
    cr_assert_lt(n, MAX_N);
    cr_assert_gt(recovered, 0);
    cr_log_info("write, call repeated: %ld recovered, %ld fatal", recovered, fatal);
    scene_free(&sc);
}

Test(fault, alloc_write) {
    loop_stats a = alloc_write_loop(false, false);
    loop_stats b = alloc_write_loop(true, false);
    loop_stats c = alloc_write_loop(false, true);
    cr_assert_geq(a.failures, 10);
    cr_assert_eq(a.failures, b.failures);
    cr_assert_eq(a.failures, c.failures);
    cr_log_info("write: %ld allocation failure points", a.failures);
}

/* Everything a reader user does, reading every tensor whole (decompressing) and verifying. */
static qfmt_status read_everything(qfmt_reader *r, unsigned threads, const model_data *m,
                                   qfmt_error *e) {
    qfmt_status s;
    for (uint64_t i = 0; i < qfmt_tensor_count(r); i++) {
        qfmt_tensor_info ti;
        if ((s = qfmt_tensor_get_info(r, i, &ti, e))) return s;
        uint64_t idx;
        if ((s = qfmt_tensor_find(r, ti.name, &idx, e))) return s;
        if ((s = qfmt_tensor_verify(r, i, e))) return s;
        uint8_t *buf = malloc(ti.raw_size ? ti.raw_size : 1);
        cr_assert_not_null(buf);
        s = qfmt_tensor_read(r, i, buf, ti.raw_size, true, e);
        if (s == QFMT_OK && !strcmp(ti.name, "zstd.stream"))
            cr_assert_eq(memcmp(buf, m->zstream, ZSTREAM), 0, "zstd.stream decodes right");
        if (s == QFMT_OK && !strcmp(ti.name, "plain.stream"))
            cr_assert_eq(memcmp(buf, m->pstream, PSTREAM), 0, "plain.stream reads right");
        if (s == QFMT_OK && !strcmp(ti.name, "zstd.whole"))
            cr_assert_eq(memcmp(buf, m->zwhole, ZWHOLE), 0, "zstd.whole decodes right");
        free(buf);
        if (s) return s;
        if (ti.codec == QFMT_CODEC_NONE) {
            const void *v;
            uint64_t vs;
            if ((s = qfmt_tensor_view(r, i, &v, &vs, e))) return s;
        }
    }
    for (uint64_t i = 0; i < qfmt_meta_count(r); i++) {
        const char *k;
        qfmt_value v;
        if ((s = qfmt_meta_get_entry(r, i, &k, &v, e))) return s;
        if (v.type == QFMT_META_ARRAY)
            for (uint64_t j = 0; j < v.v.arr.count; j++) {
                qfmt_value ev;
                if ((s = qfmt_meta_array_get(r, k, j, &ev, e))) return s;
            }
    }
    uint32_t fib[5];
    if ((s = qfmt_meta_array_copy(r, "model.fib", QFMT_META_U32, fib, 5, e))) return s;
    return qfmt_reader_verify(r, threads, e);
}

static loop_stats alloc_read_loop(bool persist, bool from_file, bool verify_at_open,
                                  unsigned threads) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/r.qfmt", dir);
    th_write_file(path, g_ref, g_ref_size);
    loop_stats st = {0, 0};
    long n;
    for (n = 1; n < MAX_N; n++) {
        fault_alloc fa;
        fa_init(&fa, n, persist);
        qfmt_allocator a = fa_allocator(&fa);
        qfmt_open_opts oo = {0};
        oo.alloc = &a;
        oo.verify_checksums = verify_at_open;
        qfmt_reader *r = (qfmt_reader *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = from_file ? qfmt_reader_open(&r, path, &oo, &e)
                                  : qfmt_reader_open_memory(&r, g_ref, g_ref_size, &oo, &e);
        if (s == QFMT_OK) {
            s = read_everything(r, threads, &g_model, &e);
            qfmt_reader_close(r);
        } else {
            cr_assert_null(r, "n=%ld", n);
        }
        cr_assert_eq(fa.live, 0, "read, allocation #%ld: %ld leaked (status %d)", n, fa.live,
                     (int)s);
        cr_assert_eq(fa.bad_frees, 0);
        if (fa.failed == 0) {
            cr_assert_eq(s, QFMT_OK, "n=%ld: nothing failed, yet %d: %s", n, (int)s, e.message);
            break;
        }
        st.points++;
        cr_assert_eq(s, QFMT_E_NOMEM, "read, allocation #%ld %s: %d (%s): %s", n,
                     persist ? "on" : "once", (int)s, qfmt_strerror(s), e.message);
        cr_assert_eq(e.code, QFMT_E_NOMEM);
        st.failures++;
    }
    cr_assert_lt(n, MAX_N);
    th_rmtree(dir);
    return st;
}

Test(fault, alloc_open_verify_read) {
    long total = 0;
    for (int persist = 0; persist < 2; persist++)
        for (int from_file = 0; from_file < 2; from_file++)
            for (int vo = 0; vo < 2; vo++) {
                loop_stats s = alloc_read_loop(persist, from_file, vo, 1);
                cr_assert_geq(s.failures, 5, "open, verify and read allocate");
                total += s.failures;
            }
    cr_log_info("read: %ld allocation failure points over 8 loops", total);
}

/* Several verify threads allocating at once: counts stay balanced (no determinism needed). */
Test(fault, alloc_threaded_verify) {
    for (int persist = 0; persist < 2; persist++) {
        fault_alloc fa;
        for (long n = 1; n < 400; n += 7) {
            fa_init(&fa, n, persist);
            qfmt_allocator a = fa_allocator(&fa);
            qfmt_open_opts oo = {0};
            oo.alloc = &a;
            qfmt_reader *r = NULL;
            qfmt_error e;
            qfmt_status s = qfmt_reader_open_memory(&r, g_ref, g_ref_size, &oo, &e);
            if (s == QFMT_OK) {
                s = qfmt_reader_verify(r, 4, &e);
                qfmt_reader_close(r);
            }
            cr_assert_eq(fa.live, 0, "n=%ld: %ld leaked", n, fa.live);
            cr_assert(s == QFMT_OK || s == QFMT_E_NOMEM, "n=%ld: %d %s", n, (int)s, e.message);
            if (fa.failed == 0) {
                cr_assert_eq(s, QFMT_OK);
                break;
            }
        }
    }
}

/* ---- Safetensors import ------------------------------------------------------------------- */
/* A small safetensors file: 4 tensors of several dtypes, __metadata__ with 3 strings. */
static uint8_t *st_bytes(size_t *size) {
    char hdr[1024];
    int hl = snprintf(hdr, sizeof hdr,
                      "{\"__metadata__\":{\"format\":\"pt\",\"name\":\"fault\",\"note\":\"x\"},"
                      "\"w.weight\":{\"dtype\":\"F32\",\"shape\":[2,32],\"data_offsets\":[0,256]},"
                      "\"b.bias\":{\"dtype\":\"BF16\",\"shape\":[8],\"data_offsets\":[256,272]},"
                      "\"h.half\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[272,280]},"
                      "\"ids\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[280,304]}}");
    cr_assert(hl > 0 && (size_t)hl < sizeof hdr);
    size_t pad = (8 - (size_t)hl % 8) % 8, data = 304;
    *size = 8 + (size_t)hl + pad + data;
    uint8_t *b = calloc(*size, 1);
    cr_assert_not_null(b);
    th_put64(b, (uint64_t)hl + pad);
    memcpy(b + 8, hdr, (size_t)hl);
    memset(b + 8 + hl, ' ', pad);
    th_fill_random(b + 8 + hl + pad, data, 9);
    return b;
}

static qfmt_status st_use(qfmt_st_file *f, qfmt_error *e) {
    qfmt_status s;
    for (uint64_t i = 0; i < qfmt_st_count(f); i++) {
        qfmt_st_tensor t;
        if ((s = qfmt_st_get(f, i, &t, e))) return s;
        uint64_t idx;
        if ((s = qfmt_st_find(f, t.name, &idx, e))) return s;
        cr_assert_eq(idx, i);
        qfmt_st_release(f, i);
    }
    cr_assert_str_eq(qfmt_st_metadata(f, "name"), "fault");
    return QFMT_OK;
}

static loop_stats alloc_st_loop(bool persist, bool from_file) {
    size_t size;
    uint8_t *b = st_bytes(&size);
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    th_write_file(path, b, size);
    loop_stats st = {0, 0};
    long n;
    for (n = 1; n < MAX_N; n++) {
        fault_alloc fa;
        fa_init(&fa, n, persist);
        qfmt_allocator a = fa_allocator(&fa);
        qfmt_st_file *f = (qfmt_st_file *)(uintptr_t)1;
        qfmt_error e;
        memset(&e, 0, sizeof e);
        qfmt_status s = from_file ? qfmt_st_open(&f, path, &a, &e)
                                  : qfmt_st_open_memory(&f, b, size, &a, &e);
        if (s == QFMT_OK) {
            cr_assert_eq(qfmt_st_count(f), 4u);
            s = st_use(f, &e);
            qfmt_st_close(f);
        } else {
            cr_assert_null(f, "n=%ld", n);
        }
        cr_assert_eq(fa.live, 0, "safetensors, allocation #%ld: %ld leaked (status %d)", n,
                     fa.live, (int)s);
        cr_assert_eq(fa.bad_frees, 0);
        if (fa.failed == 0) {
            cr_assert_eq(s, QFMT_OK, "n=%ld: %d %s", n, (int)s, e.message);
            break;
        }
        st.points++;
        cr_assert_eq(s, QFMT_E_NOMEM, "safetensors, allocation #%ld %s: %d (%s): %s", n,
                     persist ? "on" : "once", (int)s, qfmt_strerror(s), e.message);
        cr_assert_eq(e.code, QFMT_E_NOMEM);
        st.failures++;
    }
    cr_assert_lt(n, MAX_N);
    free(b);
    th_rmtree(dir);
    return st;
}

Test(fault, alloc_safetensors_import) {
    long total = 0;
    for (int persist = 0; persist < 2; persist++)
        for (int from_file = 0; from_file < 2; from_file++) {
            loop_stats s = alloc_st_loop(persist, from_file);
            cr_assert_geq(s.failures, 3);
            total += s.failures;
        }
    cr_log_info("safetensors: %ld allocation failure points over 4 loops", total);
}

/* ---- A conversion through the library: import, quantize, write ----------------------------- */
/* What `qfmt convert` does with libqfmt, every allocation and every system call of the writer
 * going through the hooks: safetensors -> q8_0 / f16 / zstd -> qfmt. */
static qfmt_status convert_once(const char *src, const char *dst, const qfmt_allocator *a,
                                const qfmt_io *io, qfmt_error *e) {
    qfmt_st_file *f = NULL;
    qfmt_writer *w = NULL;
    uint8_t *buf = NULL;
    qfmt_status s = qfmt_st_open(&f, src, a, e);
    if (s) return s;
    qfmt_write_opts wo = {0};
    wo.alloc = a;
    if ((s = qfmt_writer_create_io(&w, dst, &wo, io, e))) goto out;
    if ((s = qfmt_writer_set_string(w, "general.name", qfmt_st_metadata(f, "name"), 5, e))) goto out;
    for (uint64_t i = 0; i < qfmt_st_count(f); i++) {
        qfmt_st_tensor t;
        if ((s = qfmt_st_get(f, i, &t, e))) goto out;
        qfmt_tensor_desc d = th_desc(t.name, t.type, QFMT_CODEC_ZSTD, t.ndim, t.dims);
        if (t.type == QFMT_TYPE_F32 && t.ndim == 2 && t.dims[1] % 32 == 0) {
            uint64_t bytes;
            cr_assert_eq(qfmt_type_size(QFMT_TYPE_Q8_0, t.nelements, &bytes), QFMT_OK);
            buf = malloc(bytes);
            cr_assert_not_null(buf);
            if ((s = qfmt_quantize(QFMT_TYPE_Q8_0, buf, bytes, t.type, t.data, t.dims[0],
                                   t.dims[1], NULL, e)))
                goto out;
            d.type = QFMT_TYPE_Q8_0;
            s = qfmt_writer_add_tensor(w, &d, buf, bytes, e);
            free(buf);
            buf = NULL;
        } else {
            s = qfmt_writer_add_tensor(w, &d, t.data, t.size, e);
        }
        if (s) goto out;
    }
    s = qfmt_writer_finish(w, e);
out:
    free(buf);
    qfmt_writer_free(w);
    qfmt_st_close(f);
    return s;
}

Test(fault, convert_through_library) {
    /* a safetensors source with a quantizable 2-D weight (finite values) */
    size_t size;
    uint8_t *b = st_bytes(&size);
    uint64_t hl = th_get64(b);
    float *w = (float *)(void *)(b + 8 + hl); /* 8-aligned: the header is padded */
    for (int i = 0; i < 64; i++) w[i] = (float)(i - 16) / 8.0f;
    char dir[PATH_MAX], src[PATH_MAX + 32], dst[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(src, sizeof src, "%s/in.safetensors", dir);
    snprintf(dst, sizeof dst, "%s/out.qfmt", dir);
    th_write_file(src, b, size);
    qfmt_error e;
    TH_OKE(convert_once(src, dst, NULL, NULL, &e), e);
    size_t ref_size;
    uint8_t *ref = th_read_file(dst, &ref_size);
    unlink(dst);
    long points = 0;
    for (int kind = 0; kind < 4; kind++) { /* allocation once, allocation on, write, fsync */
        long n;
        for (n = 1; n < MAX_N; n++) {
            fault_alloc fa;
            fa_init(&fa, kind < 2 ? n : 0, kind == 1);
            qfmt_allocator a = fa_allocator(&fa);
            fault_io f;
            fi_init(&f, kind == 3 ? OP_FSYNC : OP_WRITE, kind >= 2 ? n : 0, M_ERR, EIO, false);
            qfmt_io io = fi_table(&f);
            qfmt_status s = convert_once(src, dst, &a, &io, &e);
            cr_assert_eq(fa.live, 0, "convert kind %d n=%ld: %ld leaked", kind, n, fa.live);
            cr_assert_eq(f.open_fds, 0);
            if (fa.failed == 0 && f.injected == 0) {
                cr_assert_eq(s, QFMT_OK, "kind %d n=%ld: %s", kind, n, e.message);
                cr_assert(file_equals(dst, ref, ref_size), "kind %d: differs", kind);
                unlink(dst);
                break;
            }
            points++;
            cr_assert_eq(s, kind < 2 ? QFMT_E_NOMEM : QFMT_E_IO, "convert kind %d n=%ld: %d %s",
                         kind, n, (int)s, e.message);
            if (kind >= 2) cr_assert_eq(e.sys_errno, EIO);
            if (f.renamed) {
                cr_assert(file_equals(dst, ref, ref_size));
                unlink(dst);
            }
            cr_assert_eq(th_count_entries(dir, NULL, 0), 1, "kind %d n=%ld: leftovers", kind, n);
        }
        cr_assert_lt(n, MAX_N);
    }
    cr_log_info("convert: %ld failure points", points);
    free(ref);
    free(b);
    th_rmtree(dir);
}

/* ---- The safetensors writer (qfmt_st_writer): the same contract as the qfmt writer ---------- */
/* A file of four tensors, the largest given in pieces: header, then data, then commit. */
static qfmt_status write_st(const char *path, const model_data *m, const qfmt_io *io,
                            const qfmt_allocator *alloc, qfmt_error *e) {
    qfmt_st_tensor_desc t[4] = {QFMT_ST_TENSOR_DESC_INIT, QFMT_ST_TENSOR_DESC_INIT,
                                QFMT_ST_TENSOR_DESC_INIT, QFMT_ST_TENSOR_DESC_INIT};
    t[0].name = "f32";
    t[0].type = QFMT_TYPE_F32;
    t[0].ndim = 2;
    t[0].dims[0] = 64;
    t[0].dims[1] = 48;
    t[1].name = "big.\"quoted\"";
    t[1].type = QFMT_TYPE_U8;
    t[1].ndim = 1;
    t[1].dims[0] = BIG;
    t[2].name = "scalar";
    t[2].type = QFMT_TYPE_I64;
    t[3].name = "bf16";
    t[3].type = QFMT_TYPE_BF16;
    t[3].ndim = 1;
    t[3].dims[0] = 1000;
    qfmt_st_writer *w = (qfmt_st_writer *)(uintptr_t)1;
    memset(e, 0, sizeof *e);
    qfmt_status s = qfmt_st_writer_begin_io(&w, path, t, 4, alloc, io, e);
    if (s != QFMT_OK) {
        cr_assert_null(w, "*out is NULL when begin fails");
        return s;
    }
    const int64_t one = -7;
    if ((s = qfmt_st_writer_write(w, m->f32, 64 * 48 * 4, e))) goto out;
    for (size_t at = 0; at < BIG; at += PIECE)
        if ((s = qfmt_st_writer_write(w, m->big + at, BIG - at < PIECE ? BIG - at : PIECE, e))) goto out;
    if ((s = qfmt_st_writer_write(w, &one, 8, e))) goto out;
    if ((s = qfmt_st_writer_write(w, m->pstream, 2000, e))) goto out;
    s = qfmt_st_writer_commit(w, e);
    if (s != QFMT_OK) cr_assert_null(qfmt_st_writer_temp_path(w), "no temporary file after a failed commit");
out:
    qfmt_st_writer_free(w);
    return s;
}

static uint8_t *st_reference(size_t *size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    th_mkdtemp(dir);
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    qfmt_error e;
    TH_OKE(write_st(path, &g_model, NULL, NULL, &e), e);
    uint8_t *b = th_read_file(path, size);
    th_rmtree(dir);
    qfmt_st_file *f = NULL;
    TH_OKE(qfmt_st_open_memory(&f, b, *size, NULL, &e), e);
    cr_assert_eq(qfmt_st_count(f), 4u);
    qfmt_st_close(f);
    return b;
}

/* Fails the n-th `op` of a safetensors write for n = 1, 2, ... (cf. io_loop). */
static loop_stats st_io_loop(const uint8_t *ref, size_t ref_size, io_op op, io_mode mode, int err,
                             bool persist, bool with_previous) {
    scene sc;
    scene_init_as(&sc, "model.safetensors", with_previous, ref, ref_size);
    loop_stats st = {0, 0};
    long n;
    for (n = 1; n < MAX_N; n++) {
        char what[160];
        snprintf(what, sizeof what, "st %s #%ld %s (mode %d, errno %d%s)", op_names[op], n,
                 persist ? "on" : "once", (int)mode, err, with_previous ? ", over a file" : "");
        fault_io f;
        fi_init(&f, op, n, mode, err, persist);
        qfmt_io io = fi_table(&f);
        fault_alloc fa;
        fa_init(&fa, 0, false);
        qfmt_allocator a = fa_allocator(&fa);
        qfmt_error e;
        qfmt_status s = write_st(sc.path, &g_model, &io, &a, &e);
        cr_assert_eq(fa.live, 0, "%s: %ld allocations leaked", what, fa.live);
        cr_assert_eq(f.open_fds, 0, "%s: %d file descriptors left open", what, f.open_fds);
        if (f.injected == 0) {
            cr_assert_eq(s, QFMT_OK, "%s: nothing injected, yet %d: %s", what, (int)s, e.message);
            expect_reference(&sc, what);
            break;
        }
        st.points++;
        if (mode == M_SHORT || mode == M_EINTR || (f.dir_only && op == OP_CLOSE)) {
            cr_assert_eq(s, QFMT_OK, "%s: %d: %s", what, (int)s, e.message);
            expect_reference(&sc, what);
            scene_reset(&sc);
            continue;
        }
        st.failures++;
        cr_assert_eq(s, QFMT_E_IO, "%s: %d (%s): %s", what, (int)s, qfmt_strerror(s), e.message);
        cr_assert_eq(e.code, s);
        cr_assert_eq(e.sys_errno, f.injected_errno, "%s: sys_errno %d (%s)", what, e.sys_errno, e.message);
        cr_assert_not_null(strstr(e.path, "model.safetensors"), "%s: err.path '%s'", what, e.path);
        if (op == OP_WRITE)
            cr_assert_eq(e.offset, (uint64_t)f.bytes, "%s: failed at byte %" PRIu64 ", after %ld written",
                         what, e.offset, f.bytes);
        if (f.renamed) {
            cr_assert(f.dir_only, "%s: a failure after the rename that is not the directory's", what);
            expect_reference(&sc, what);
            scene_reset(&sc);
        } else {
            expect_untouched(&sc, what);
        }
    }
    cr_assert_lt(n, MAX_N);
    scene_free(&sc);
    return st;
}

Test(fault, st_writer_io) {
    size_t ref_size;
    uint8_t *ref = st_reference(&ref_size);
    for (int prev = 0; prev < 2; prev++) {
        loop_stats w = st_io_loop(ref, ref_size, OP_WRITE, M_ERR, ENOSPC, false, prev);
        cr_assert_geq(w.failures, 10, "header, f32, the pieces of big, ... (%ld)", w.failures);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_WRITE, M_ERR, EIO, true, prev).failures, w.failures);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_WRITE, M_SHORT_ERR, EIO, false, prev).failures, w.failures);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_WRITE, M_SHORT, 0, false, prev).failures, 0);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_WRITE, M_EINTR, 0, false, prev).failures, 0);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_FSYNC, M_ERR, EIO, false, prev).failures, 2,
                     "the file's fsync, then the directory's");
        loop_stats c = st_io_loop(ref, ref_size, OP_CLOSE, M_ERR, EIO, false, prev);
        cr_assert_eq(c.points, 2);
        cr_assert_eq(c.failures, 1, "the directory's close loses nothing");
        cr_assert_eq(st_io_loop(ref, ref_size, OP_RENAME, M_ERR, EXDEV, false, prev).failures, 1);
        cr_assert_eq(st_io_loop(ref, ref_size, OP_OPEN, M_ERR, EACCES, false, prev).failures, 2,
                     "the temporary file, then the directory");
    }
    free(ref);
}

/* Fail the n-th allocation (once, then from n on): QFMT_E_NOMEM, nothing leaked, nothing on
 * disk; the run that allocates nothing injected gives the reference bytes. */
Test(fault, st_writer_alloc) {
    size_t ref_size;
    uint8_t *ref = st_reference(&ref_size);
    for (int persist = 0; persist < 2; persist++) {
        scene sc;
        scene_init_as(&sc, "model.safetensors", persist, ref, ref_size);
        long n, failures = 0;
        for (n = 1; n < MAX_N; n++) {
            fault_alloc fa;
            fa_init(&fa, n, persist);
            qfmt_allocator a = fa_allocator(&fa);
            fault_io f;
            fi_init(&f, OP_WRITE, 0, M_ERR, 0, false);
            qfmt_io io = fi_table(&f);
            qfmt_error e;
            qfmt_status s = write_st(sc.path, &g_model, &io, &a, &e);
            cr_assert_eq(fa.live, 0, "alloc #%ld: %ld allocations leaked", n, fa.live);
            cr_assert_eq(f.open_fds, 0);
            if (fa.failed == 0) {
                cr_assert_eq(s, QFMT_OK, "%s", e.message);
                expect_reference(&sc, "no allocation failed");
                break;
            }
            failures++;
            cr_assert_eq(s, QFMT_E_NOMEM, "alloc #%ld: %d %s", n, (int)s, e.message);
            cr_assert_eq(e.code, QFMT_E_NOMEM);
            expect_untouched(&sc, "allocation failure");
        }
        cr_assert_lt(n, MAX_N);
        cr_assert_geq(failures, 3, "the writer, its paths, the names' index, the header");
        scene_free(&sc);
    }
    free(ref);
}
