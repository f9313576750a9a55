/*
 * bench_run.c - speed of the model runtime (libqfmt_model: qfmt_model.h): prompt processing and generation
 * tokens/s, each generation figure beside the memory bound (not part of the test suite: tests
 * never time anything).
 *
 *     bench_run [QFMT] [--fixtures DIR] [--no-fixtures] [--synthetic DIR] [--model FILE.qfmt]...
 *               [--types T,T,..] [--prompt N] [--gen N] [--repeat R] [--paths fast|exact|both]
 *               [--threads N,N,..] [--keep]
 *
 * For each model file: a prompt of N tokens (default 64) evaluated from an empty KV cache
 * (prompt tokens/s), then G tokens (default 32) generated greedily one at a time (generation
 * tokens/s), with 1 and 2 threads (--threads to change), on the fast path (8-bit activations,
 * integer dot products where the weight type has them) and the exact one (fp32 against each row
 * decoded on the fly).
 * Each figure is the best of R runs (default 3; 1 for the synthetic model), after one warm-up
 * run per file (which maps the weights in).
 *
 * Memory bound: generating a token reads every weight matrix once (the attention and MLP
 * projections of every layer and the LM head; of the embedding tables only one row, not
 * counted), so generation cannot beat (bytes of those matrices) / (memory bandwidth) tokens/s.
 * The bandwidth is that of a pure read stream (a sum over 256 MiB), measured in this run with
 * each thread count, as generation reads its weights; memcpy's (each byte read once and written
 * once) is printed beside it. A model that fits in the CPU caches, as the fixtures do, is not
 * held by DRAM at all: ratios above 100% there are expected. The table shows the bound and the
 * ratio achieved.
 *
 * Models:
 *  - the fixtures (DIR, default tests/data/fixtures of this source tree): gpt2-kjv,
 *    llama-kjv and llama3-kjv (Llama 3 RoPE scaling, tied head), and bert-kjv for prompt
 *    processing only (no generation), each converted by
 *    `QFMT convert` to f16, q8_0 and q4_0 (--types to change) into a scratch directory;
 *  - --synthetic DIR: a Hugging Face checkpoint with TinyLlama-1.1B's shape and random BF16
 *    weights (hidden 2048, ffn 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000), written to
 *    DIR as bench_convert does (2.2 GB; reused when already there), converted likewise (each
 *    conversion removed after its benchmark; the model too unless --keep). Needs about 2.2 GB
 *    for the model and 2.5 GB for the largest conversion, and takes minutes;
 *  - --model FILE.qfmt (repeatable): an already converted model, as it is.
 *
 * QFMT is the qfmt binary: the first argument, else $QFMT_CLI, else ../tools/qfmt beside this
 * program's directory (the build tree's layout). Token ids are pseudo-random (fixed seed): speed
 * does not depend on them.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qfmt_model.h"
#include "qfmt.h"

enum {
    MEMCPY_BYTES = 256 << 20,
    MEMCPY_REPS = 5,
    MAX_THREADS = 256,     /* the most --threads may ask for */
    MAX_THREAD_COUNTS = 16, /* how many thread counts --threads may list */
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- Cleanup: files removed at exit and on SIGINT/SIGTERM --------------------------------- */

enum { MAX_CLEANUP = 32 };
static char cleanup_paths[MAX_CLEANUP][PATH_MAX];
static bool cleanup_is_dir[MAX_CLEANUP];
static volatile sig_atomic_t child_pid;

static void cleanup_add(const char *path, bool is_dir)
{
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (cleanup_paths[i][0] == '\0') {
            snprintf(cleanup_paths[i], sizeof cleanup_paths[i], "%s", path);
            cleanup_is_dir[i] = is_dir;
            return;
        }
}

static void cleanup_drop(const char *path)
{
    for (int i = 0; i < MAX_CLEANUP; i++)
        if (strcmp(cleanup_paths[i], path) == 0) cleanup_paths[i][0] = '\0';
}

static void cleanup_run(void)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = MAX_CLEANUP - 1; i >= 0; i--)
            if (cleanup_paths[i][0] != '\0' && cleanup_is_dir[i] == (pass == 1)) {
                if (pass == 0) unlink(cleanup_paths[i]);
                else rmdir(cleanup_paths[i]);
            }
}

static void on_signal(int sig)
{
    if (child_pid > 0) kill((pid_t)child_pid, sig);
    cleanup_run();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fflush(stdout);
    fputs("bench_run: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup_run();
    exit(1);
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) die("out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* ---- memcpy bandwidth, by thread count -------------------------------------------------------- */

typedef struct {
    char *dst;        /* NULL: read only */
    const char *src;
    size_t n;
    uint64_t sum;     /* read only: what was read, so the loop cannot be dropped */
} stream_job;

/* Sums n bytes in 32-byte vectors with 8 independent accumulators: the loads, not the adds, are
 * the limit. With AVX2 when the CPU has it, as the runtime's kernels read their weights. */
typedef uint64_t v4 __attribute__((vector_size(32)));
#define SUM_BODY                                                                                   \
    const v4 *w = (const v4 *)(const void *)p;                                                     \
    v4 s[8] = {{0, 0, 0, 0}};                                                                      \
    for (size_t i = 0; i + 8 <= n / sizeof(v4); i += 8)                                            \
        for (int k = 0; k < 8; k++) s[k] += w[i + (size_t)k];                                      \
    uint64_t sum = 0;                                                                              \
    for (int k = 0; k < 8; k++) sum += s[k][0] + s[k][1] + s[k][2] + s[k][3];                      \
    return sum;
#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_sum_avx2(const char *p, size_t n) { SUM_BODY }
#endif
static uint64_t read_sum(const char *p, size_t n) { SUM_BODY }

static void *stream_thread(void *p)
{
    stream_job *j = p;
    if (j->dst) {
        memcpy(j->dst, j->src, j->n);
        return NULL;
    }
#if defined(__x86_64__)
    if (qfmt_kernel_available(QFMT_KERNEL_AVX2)) {
        j->sum = read_sum_avx2(j->src, j->n);
        return NULL;
    }
#endif
    j->sum = read_sum(j->src, j->n);
    return NULL;
}

/* Bytes per second that `threads` threads move, each through its share of a 256 MiB buffer:
 * copied (memcpy: each byte read once and written once) or only read (a sum, as generation reads
 * weights). */
static double stream_bandwidth(unsigned threads, bool copy)
{
    char *a = malloc(MEMCPY_BYTES), *b = malloc(MEMCPY_BYTES);
    if (!a || !b) die("out of memory");
    memset(a, 1, MEMCPY_BYTES);
    memset(b, 2, MEMCPY_BYTES);
    double best = 1e9;
    uint64_t sink = 0;
    for (int rep = 0; rep < MEMCPY_REPS; rep++) {
        pthread_t tid[MAX_THREADS];
        stream_job job[MAX_THREADS];
        size_t share = MEMCPY_BYTES / threads;
        char *dst = rep % 2 ? a : b, *src = rep % 2 ? b : a;
        double t0 = now();
        for (unsigned t = 0; t < threads; t++) {
            job[t] = (stream_job){copy ? dst + t * share : NULL, src + t * share, share, 0};
            if (t == 0) continue;
            if (pthread_create(&tid[t], NULL, stream_thread, &job[t]) != 0) die("pthread_create failed");
        }
        stream_thread(&job[0]);
        for (unsigned t = 1; t < threads; t++) pthread_join(tid[t], NULL);
        double dt = now() - t0;
        if (dt < best) best = dt;
        for (unsigned t = 0; t < threads; t++) sink += job[t].sum;
    }
    volatile uint64_t keep = sink + (uint64_t)a[12345] + (uint64_t)b[54321];
    (void)keep;
    free(a);
    free(b);
    return MEMCPY_BYTES / best;
}

/* ---- Running qfmt convert ---------------------------------------------------------------- */

static double run_cmd(char *const argv[])
{
    fflush(stdout);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) dup2(fd, STDOUT_FILENO);
        execv(argv[0], argv);
        fprintf(stderr, "bench_run: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    child_pid = pid;
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {}
    child_pid = 0;
    if (w < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_run: failed:");
        for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fputc('\n', stderr);
        die("stopping");
    }
    return now() - t0;
}

static void convert(const char *qfmt, const char *src, const char *out, const char *type)
{
    char threads[24];
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(threads, sizeof threads, "%ld", n > 0 ? n : 1);
    char *argv[] = {(char *)qfmt, "convert", (char *)src, "-o", (char *)out, "--type", (char *)type,
                    "--threads", threads, NULL};
    double dt = run_cmd(argv);
    printf("converted %s to %s in %.1f s (%.0f MB)\n", src, type, dt, (double)file_size(out) / 1e6);
}

/* ---- The synthetic TinyLlama-shaped model (as bench_convert writes it) -------------------- */

enum {
    S_HIDDEN = 2048,
    S_FFN = 5632,
    S_LAYERS = 22,
    S_HEADS = 32,
    S_KV_HEADS = 4,
    S_HEAD_DIM = S_HIDDEN / S_HEADS,
    S_VOCAB = 32000,
    S_NTENSORS = 3 + 9 * S_LAYERS,
    CHUNK_BYTES = 8 << 20,
};

typedef struct {
    char name[80];
    uint64_t dims[2];
    uint32_t ndim;
    bool norm;
    uint64_t begin, end;
} stensor;

static stensor stensors[S_NTENSORS];
static size_t nstensors;

static void add_stensor(const char *name, uint64_t d0, uint64_t d1, bool norm)
{
    stensor *t = &stensors[nstensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->ndim = d1 ? 2 : 1;
    t->norm = norm;
}

static uint64_t stensor_bytes(const stensor *t) { return 2 * t->dims[0] * (t->ndim == 2 ? t->dims[1] : 1); }

/* Every tensor of the table but optional biases (the untied head is optional and kept). */
static bool plan_one(void *ctx, const qfmt_family_tensor *t)
{
    (void)ctx;
    if (!t->optional || t->ndim == 2) add_stensor(t->name, t->dims[0], t->ndim == 2 ? t->dims[1] : 0, t->ndim == 1);
    return true;
}

static uint64_t plan_synthetic(void)
{
    nstensors = 0;
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.vocab = S_VOCAB, h.d = S_HIDDEN, h.layers = S_LAYERS, h.heads = S_HEADS, h.kv_heads = S_KV_HEADS;
    h.head_dim = S_HEAD_DIM, h.ffn = S_FFN, h.ctx = 2048;
    qfmt_error e;
    /* The family's own tensor list (libqfmt_model/src/families/llama.c), untied head included. */
    if (qfmt_family_tensors(qfmt_family_find("llama", 5), &h, plan_one, NULL, &e) != QFMT_OK)
        die("tensor list: %s", e.message);
    uint64_t at = 0;
    for (size_t i = 0; i < nstensors; i++) {
        stensors[i].begin = at;
        at += stensor_bytes(&stensors[i]);
        stensors[i].end = at;
    }
    return at;
}

static char *make_header(size_t *len)
{
    size_t cap = 64 + nstensors * 192, n = 0;
    char *h = malloc(cap);
    if (!h) die("out of memory");
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < nstensors; i++) {
        const stensor *t = &stensors[i];
        if (t->ndim == 2)
            n += (size_t)snprintf(h + n, cap - n,
                                  ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%" PRIu64 ",%" PRIu64
                                  "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                  t->name, t->dims[0], t->dims[1], t->begin, t->end);
        else
            n += (size_t)snprintf(h + n, cap - n,
                                  ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%" PRIu64 "],\"data_offsets\":[%" PRIu64
                                  ",%" PRIu64 "]}",
                                  t->name, t->dims[0], t->begin, t->end);
        if (n >= cap - 8) die("header buffer too small");
    }
    h[n++] = '}';
    while (n % 8) h[n++] = ' ';
    *len = n;
    return h;
}

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Bell-shaped BF16 values: sd about 0.02 for weights, 1 +- 0.05 for norms. */
static void fill_bf16(uint16_t *out, size_t n, bool norm, uint64_t *seed)
{
    const float scale = 0.02f / 37837.0f;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(seed);
        int32_t s = (int32_t)(r & 0xFFFF) + (int32_t)((r >> 16) & 0xFFFF) + (int32_t)((r >> 32) & 0xFFFF) +
                    (int32_t)(r >> 48) - 2 * 65535;
        float v = (float)s * scale;
        out[i] = qfmt_f32_to_bf16(norm ? 1.0f + 2.5f * v : v);
    }
}

static void write_all(int fd, const void *p, size_t n, const char *path)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) die("%s: write failed: %s", path, k < 0 ? strerror(errno) : "no progress");
        c += k;
        n -= (size_t)k;
    }
}

static void write_synthetic(const char *dir, uint64_t data_size)
{
    size_t hlen;
    char *header = make_header(&hlen);
    char *final = path_join(dir, "model.safetensors"), *tmp = path_join(dir, "model.safetensors.part");
    cleanup_add(tmp, false);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("%s: cannot create: %s", tmp, strerror(errno));
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)hlen >> (8 * k));
    write_all(fd, len8, 8, tmp);
    write_all(fd, header, hlen, tmp);
    uint16_t *chunk = malloc(CHUNK_BYTES);
    if (!chunk) die("out of memory");
    uint64_t seed = 0x51F0A7ull;
    double t0 = now();
    for (size_t i = 0; i < nstensors; i++) {
        uint64_t left = stensor_bytes(&stensors[i]);
        while (left) {
            size_t n = left < CHUNK_BYTES ? (size_t)left : CHUNK_BYTES;
            fill_bf16(chunk, n / 2, stensors[i].norm, &seed);
            write_all(fd, chunk, n, tmp);
            left -= n;
        }
    }
    if (close(fd) != 0) die("%s: close failed: %s", tmp, strerror(errno));
    if (rename(tmp, final) != 0) die("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    cleanup_drop(tmp);
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.vocab = S_VOCAB, h.d = S_HIDDEN, h.layers = S_LAYERS, h.heads = S_HEADS, h.kv_heads = S_KV_HEADS;
    h.head_dim = S_HEAD_DIM, h.ffn = S_FFN, h.ctx = 2048, h.eps = 1e-5, h.rope_theta = 10000.0;
    h.rope_freq_type = QFMT_TYPE_BF16;
    /* config.json under the family's own key names (libqfmt_model/src/families/llama.c) */
    char *cfg = qfmt_family_config_json(qfmt_family_find("llama", 5), &h, false);
    if (!cfg) die("out of memory");
    char *cp = path_join(dir, "config.json");
    int cfd = open(cp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (cfd < 0) die("%s: cannot create: %s", cp, strerror(errno));
    write_all(cfd, cfg, strlen(cfg), cp);
    close(cfd);
    free(cfg);
    printf("synthesised %s: %zu tensors, %.0f MB BF16 in %.1f s\n", final, nstensors,
           (double)(8 + hlen + data_size) / 1e6, now() - t0);
    free(cp);
    free(chunk);
    free(header);
    free(tmp);
    free(final);
}

/* ---- Weight bytes read per generated token ------------------------------------------------ */

/* qfmt_model_matmul_bytes: every weight the matrix products read, the output head included. */

/* ---- The benchmark of one model file ------------------------------------------------------ */

typedef struct {
    size_t prompt, gen;
    int repeat;
    bool fast, exact; /* which paths to run */
    unsigned threads[MAX_THREAD_COUNTS]; /* the thread counts to run, ascending */
    size_t nthreads;
    double bw[MAX_THREADS + 1]; /* read bytes/s by thread count: the generation bound */
    FILE *json;                 /* --json: one object per line and measurement, or NULL */
} bench_cfg;

/* "read bandwidth: A MB/s with 1 thread, B MB/s with 2, ..." */
static void print_bandwidth(const char *what, const double *bw, const bench_cfg *c, const char *note)
{
    printf("%s", what);
    for (size_t i = 0; i < c->nthreads; i++)
        printf("%s%.0f MB/s with %u%s", i ? ", " : " ", bw[c->threads[i]] / 1e6, c->threads[i],
               i ? "" : c->threads[i] == 1 ? " thread" : " threads");
    printf("%s\n", note);
}

static size_t argmax(const float *x, size_t n)
{
    size_t b = 0;
    for (size_t i = 1; i < n; i++)
        if (x[i] > x[b]) b = i;
    return b;
}

typedef struct {
    double pp, gen; /* tokens/s, best of the repeats */
} speeds;

/* One run: the prompt from an empty cache, then `gen` greedy tokens. */
static speeds run_once(qfmt_model *m, const int32_t *ids, const bench_cfg *c, unsigned threads, bool exact,
                       float *logits)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    qfmt_run_opts o = {threads, exact, {0}};
    qfmt_error err = {0};
    char msg[1024];
    speeds s = {0, 0};
    if (!h->causal) {
        double t0 = now();
        if (qfmt_model_forward(m, ids, c->prompt, logits, NULL, &o, &err) != 0) die("forward: %s", qfmt_error_format(&err, msg, sizeof msg));
        s.pp = (double)c->prompt / (now() - t0);
        return s;
    }
    qfmt_session *se;
    if (qfmt_session_new(&se, m, &err) != 0) die("session: %s", qfmt_error_format(&err, msg, sizeof msg));
    double t0 = now();
    if (qfmt_session_eval(se, ids, c->prompt, logits, &o, &err) != 0) die("prompt: %s", qfmt_error_format(&err, msg, sizeof msg));
    double t1 = now();
    for (size_t g = 0; g < c->gen; g++) {
        int32_t id = (int32_t)argmax(logits, h->vocab);
        if (qfmt_session_eval(se, &id, 1, logits, &o, &err) != 0) die("generation: %s", qfmt_error_format(&err, msg, sizeof msg));
    }
    double t2 = now();
    s.pp = (double)c->prompt / (t1 - t0);
    s.gen = c->gen ? (double)c->gen / (t2 - t1) : 0;
    qfmt_session_free(se);
    return s;
}

static void bench_file(const char *label, const char *path, const bench_cfg *c)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK) {
        char buf[1024];
        die("%s", qfmt_error_format(&e, buf, sizeof buf));
    }
    qfmt_model *m = NULL;
    qfmt_error err = {0};
    char msg[1024];
    if (qfmt_model_load(&m, r, &err) != 0) die("%s", qfmt_error_format(&err, msg, sizeof msg));
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    uint64_t wb = qfmt_model_matmul_bytes(m);
    printf("\n== %s: %s, %" PRIu64 " layers, d %" PRIu64 ", ffn %" PRIu64 ", vocab %" PRIu64 ", ctx %" PRIu64
           "; file %.1f MB; weights read per token %.2f MB\n",
           label, qfmt_family_name(h->family), h->layers, h->d, h->ffn, h->vocab, h->ctx, (double)file_size(path) / 1e6,
           (double)wb / 1e6);
    bench_cfg cc = *c;
    if (h->causal) { /* the bound measured again just before: this machine's bandwidth drifts */
        for (size_t i = 0; i < cc.nthreads; i++) cc.bw[cc.threads[i]] = stream_bandwidth(cc.threads[i], false);
        print_bandwidth("  read bandwidth now:", cc.bw, &cc, "");
    }
    if (cc.prompt > h->ctx) cc.prompt = (size_t)h->ctx;
    if (h->causal && cc.prompt + cc.gen > h->ctx) cc.gen = (size_t)h->ctx - cc.prompt;
    int32_t *ids = malloc(cc.prompt * sizeof *ids);
    float *logits = malloc((h->causal ? 1 : cc.prompt) * h->vocab * sizeof *logits);
    if (!ids || !logits) die("out of memory");
    uint64_t seed = 0xB0B5EEDull;
    for (size_t i = 0; i < cc.prompt; i++) ids[i] = (int32_t)(splitmix64(&seed) % h->vocab);
    run_once(m, ids, &cc, cc.threads[cc.nthreads - 1], false, logits); /* warm-up: the weights mapped in */
    if (h->causal)
        printf("  threads  path   prompt (%zu tok)  generation (%zu tok)  memory bound  achieved\n", cc.prompt, cc.gen);
    else
        printf("  threads  path   prompt (%zu tok)  (no generation: bidirectional)\n", cc.prompt);
    for (size_t ti = 0; ti < cc.nthreads; ti++)
        for (int exact = 0; exact < 2; exact++) {
            unsigned threads = cc.threads[ti];
            if (!(exact ? c->exact : c->fast)) continue;
            speeds best = {0, 0};
            for (int rep = 0; rep < cc.repeat; rep++) {
                speeds s = run_once(m, ids, &cc, threads, exact, logits);
                if (s.pp > best.pp) best.pp = s.pp;
                if (s.gen > best.gen) best.gen = s.gen;
            }
            double bound = h->causal ? cc.bw[threads] / (double)wb : 0;
            if (h->causal) {
                printf("  %7u  %-5s  %10.1f tok/s  %12.1f tok/s  %8.1f tok/s  %6.0f%%\n", threads,
                       exact ? "exact" : "fast", best.pp, best.gen, bound, 100.0 * best.gen / bound);
            } else {
                printf("  %7u  %-5s  %10.1f tok/s\n", threads, exact ? "exact" : "fast", best.pp);
            }
            if (cc.json) {
                fprintf(cc.json, "{\"model\": \"");
                for (const char *q = path; *q; q++) /* a path as a JSON string */
                    fprintf(cc.json, *q == '"' || *q == '\\' ? "\\%c" : (unsigned char)*q < 0x20 ? "\\u%04x" : "%c",
                            (unsigned char)*q);
                fprintf(cc.json,
                        "\", \"threads\": %u, \"path\": \"%s\", \"prompt_tokens\": %zu, \"gen_tokens\": %zu, "
                        "\"prompt_tps\": %.3f, \"gen_tps\": %.3f, \"bound_tps\": %.3f, \"weight_bytes_per_token\": %" PRIu64
                        ", \"read_bytes_per_s\": %.0f, \"prompt_ids\": [",
                        threads, exact ? "exact" : "fast", cc.prompt, h->causal ? cc.gen : 0, best.pp, best.gen, bound, wb,
                        cc.bw[threads]);
                for (size_t k = 0; k < cc.prompt; k++) fprintf(cc.json, "%s%d", k ? ", " : "", (int)ids[k]);
                fprintf(cc.json, "]}\n");
                fflush(cc.json);
            }
            fflush(stdout);
        }
    free(ids);
    free(logits);
    qfmt_model_free(m);
    qfmt_reader_close(r);
}

/* ---- main --------------------------------------------------------------------------------- */

/* The 1-minute load average: other work on the machine skews the thread figures. */
static void print_load(const char *when)
{
    double l1 = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l1) != 1) l1 = -1;
        fclose(f);
    }
    if (l1 >= 0) printf("load average (1 min) %s: %.2f\n", when, l1);
}

static char *find_qfmt(const char *arg)
{
    if (arg) return strdup(arg);
    const char *env = getenv("QFMT_CLI");
    if (env && *env) return strdup(env);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) die("cannot find this program's directory: give the qfmt binary as the argument");
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    return path_join(self, "../tools/qfmt");
}

/* tests/data/fixtures beside this source file's directory. */
static char *default_fixtures(void)
{
    char src[PATH_MAX];
    snprintf(src, sizeof src, "%s", __FILE__);
    char *slash = strrchr(src, '/');
    if (!slash) return strdup("../tests/data/fixtures");
    *slash = '\0';
    return path_join(src, "../tests/data/fixtures");
}

static void usage(FILE *f)
{
    fputs("usage: bench_run [QFMT] [--fixtures DIR] [--no-fixtures] [--synthetic DIR] [--model FILE.qfmt]...\n"
          "                 [--types T,T,..] [--prompt N] [--gen N] [--repeat R] [--paths fast|exact|both]\n"
          "                 [--threads N,N,..] [--keep] [--json FILE]\n"
          "Prompt-processing and generation tokens/s of the model runtime (1 and 2 threads), fast and\n"
          "exact paths, each generation figure beside the memory bound (weight bytes read per token /\n"
          "memcpy bandwidth measured in the same run). Models: the fixtures (DIR, default\n"
          "tests/data/fixtures of the source tree) converted by QFMT to f16, q8_0 and q4_0 (--types);\n"
          "--synthetic DIR: a TinyLlama-1.1B-shaped random BF16 model synthesised in DIR (2.2 GB, reused\n"
          "if there; removed at the end unless --keep) converted likewise; --model: a .qfmt file as is.\n"
          "QFMT: the qfmt binary (default $QFMT_CLI, else ../tools/qfmt next to this program).\n"
          "--prompt N (default 64), --gen N (default 32): tokens; --repeat R: best of R runs (default 3,\n"
          "1 for the synthetic model); --paths: the fast path, the exact one or both (default);\n"
          "--threads: the thread counts to run, ascending (default 1,2; at most 256 threads);\n"
          "--types none: no conversion (with --synthetic DIR --keep: only synthesise the model);\n"
          "--json FILE: also append one JSON object per line and measurement to FILE (model, threads,\n"
          "path, prompt_tps, gen_tps, bound_tps, weight_bytes_per_token, read_bytes_per_s, prompt_ids).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *qfmt_arg = NULL, *fixtures_arg = NULL, *synthetic = NULL;
    const char *models[16];
    size_t nmodels = 0;
    bool fixtures = true, keep = false;
    char types_buf[256] = "f16,q8_0,q4_0";
    bench_cfg cfg = {64, 32, 3, true, true, {1, 2}, 2, {0}, NULL};
    const char *json_path = NULL;
    int repeat_set = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--fixtures") && has) {
            fixtures_arg = argv[++i];
        } else if (!strcmp(a, "--no-fixtures")) {
            fixtures = false;
        } else if (!strcmp(a, "--synthetic") && has) {
            synthetic = argv[++i];
        } else if (!strcmp(a, "--model") && has && nmodels < 16) {
            models[nmodels++] = argv[++i];
        } else if (!strcmp(a, "--types") && has) {
            snprintf(types_buf, sizeof types_buf, "%s", argv[++i]);
        } else if (!strcmp(a, "--prompt") && has) {
            cfg.prompt = (size_t)atol(argv[++i]);
        } else if (!strcmp(a, "--gen") && has) {
            cfg.gen = (size_t)atol(argv[++i]);
        } else if (!strcmp(a, "--repeat") && has) {
            cfg.repeat = atoi(argv[++i]);
            repeat_set = 1;
        } else if (!strcmp(a, "--paths") && has) {
            const char *v = argv[++i];
            cfg.fast = !strcmp(v, "fast") || !strcmp(v, "both");
            cfg.exact = !strcmp(v, "exact") || !strcmp(v, "both");
            if (!cfg.fast && !cfg.exact) {
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(a, "--threads") && has) {
            char buf[256], *end;
            snprintf(buf, sizeof buf, "%s", argv[++i]);
            cfg.nthreads = 0;
            for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                unsigned long n = strtoul(t, &end, 10);
                if (*end || n < 1 || n > MAX_THREADS || cfg.nthreads == MAX_THREAD_COUNTS ||
                    (cfg.nthreads && n <= cfg.threads[cfg.nthreads - 1])) {
                    usage(stderr);
                    return 2;
                }
                cfg.threads[cfg.nthreads++] = (unsigned)n;
            }
            if (!cfg.nthreads) {
                usage(stderr);
                return 2;
            }
        } else if (!strcmp(a, "--keep")) {
            keep = true;
        } else if (!strcmp(a, "--json") && has) {
            json_path = argv[++i];
        } else if (a[0] != '-' && !qfmt_arg) {
            qfmt_arg = a;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (cfg.prompt < 1 || cfg.prompt > 100000 || cfg.gen > 100000 || cfg.repeat < 1 || cfg.repeat > 100) {
        usage(stderr);
        return 2;
    }
    if (json_path && !(cfg.json = fopen(json_path, "a"))) die("cannot open %s: %s", json_path, strerror(errno));
    char *types[8];
    size_t ntypes = 0;
    for (char *save = NULL, *t = strtok_r(types_buf, ",", &save); t && ntypes < 8; t = strtok_r(NULL, ",", &save))
        types[ntypes++] = t;
    if (ntypes == 1 && !strcmp(types[0], "none")) ntypes = 0; /* --synthetic DIR --keep --types none: the model only */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char *qfmt = NULL;
    if (fixtures || synthetic) {
        qfmt = find_qfmt(qfmt_arg);
        if (access(qfmt, X_OK) != 0) die("%s: not an executable qfmt binary", qfmt);
    }
    char cpu[256] = "unknown CPU";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[512];
        while (fgets(line, sizeof line, ci))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = '\0';
                break;
            }
        fclose(ci);
    }
    printf("bench_run: %s, %ld online CPUs, AVX2 kernels %s\n", cpu, sysconf(_SC_NPROCESSORS_ONLN),
           qfmt_kernel_available(QFMT_KERNEL_AVX2) ? "yes" : "no");
    print_load("at the start");
    double copy_bw[MAX_THREADS + 1];
    for (size_t i = 0; i < cfg.nthreads; i++) {
        copy_bw[cfg.threads[i]] = stream_bandwidth(cfg.threads[i], true);
        cfg.bw[cfg.threads[i]] = stream_bandwidth(cfg.threads[i], false);
    }
    char note[96];
    snprintf(note, sizeof note, " (bytes copied per second, %d MiB, best of %d)", MEMCPY_BYTES >> 20, MEMCPY_REPS);
    print_bandwidth("memcpy:", copy_bw, &cfg, note);
    print_bandwidth("read:  ", cfg.bw, &cfg, " (bytes summed per second, same buffer)");
    printf("memory bound = read bandwidth (same thread count) / weight bytes read per token\n");

    if (fixtures) {
        char *fx = fixtures_arg ? strdup(fixtures_arg) : default_fixtures();
        const char *tdir = getenv("TMPDIR");
        char scratch[PATH_MAX];
        snprintf(scratch, sizeof scratch, "%s/qfmt_bench_run.XXXXXX", tdir && *tdir ? tdir : "/tmp");
        if (!mkdtemp(scratch)) die("%s: cannot create: %s", scratch, strerror(errno));
        cleanup_add(scratch, true);
        static const char *const names[] = {"gpt2-kjv", "llama-kjv", "bert-kjv", "llama3-kjv"};
        for (size_t n = 0; n < sizeof names / sizeof names[0]; n++) {
            char *src = path_join(fx, names[n]);
            for (size_t t = 0; t < ntypes; t++) {
                char name[128], label[160];
                snprintf(name, sizeof name, "%s-%s.qfmt", names[n], types[t]);
                snprintf(label, sizeof label, "%s %s", names[n], types[t]);
                char *out = path_join(scratch, name);
                cleanup_add(out, false);
                convert(qfmt, src, out, types[t]);
                bench_file(label, out, &cfg);
                unlink(out);
                cleanup_drop(out);
                free(out);
            }
            free(src);
        }
        free(fx);
    }

    for (size_t i = 0; i < nmodels; i++) bench_file(models[i], models[i], &cfg);

    if (synthetic) {
        bench_cfg sc = cfg;
        if (!repeat_set) sc.repeat = 1;
        if (mkdir(synthetic, 0755) == 0) {
            if (!keep) cleanup_add(synthetic, true);
        } else if (errno != EEXIST) {
            die("%s: cannot create: %s", synthetic, strerror(errno));
        }
        uint64_t data_size = plan_synthetic();
        size_t hlen;
        free(make_header(&hlen));
        uint64_t model_size = 8 + hlen + data_size;
        char *model = path_join(synthetic, "model.safetensors"), *config = path_join(synthetic, "config.json");
        bool reuse = file_size(model) == model_size && access(config, R_OK) == 0;
        if (!keep) {
            cleanup_add(model, false);
            cleanup_add(config, false);
        }
        struct statvfs vfs;
        uint64_t need = (reuse ? 0 : model_size) + model_size + (256u << 20);
        if (statvfs(synthetic, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need)
            die("%s: %.1f GB free, %.1f GB needed", synthetic, (double)vfs.f_bavail * vfs.f_frsize / 1e9,
                (double)need / 1e9);
        if (reuse) printf("\nsynthetic model: reusing %s (%.0f MB)\n", model, (double)model_size / 1e6);
        else write_synthetic(synthetic, data_size);
        for (size_t t = 0; t < ntypes; t++) {
            char name[64], label[160];
            snprintf(name, sizeof name, "run-%s.qfmt", types[t]);
            snprintf(label, sizeof label, "synthetic TinyLlama-1.1B-shaped %s", types[t]);
            char *out = path_join(synthetic, name);
            cleanup_add(out, false);
            convert(qfmt, synthetic, out, types[t]);
            bench_file(label, out, &sc);
            unlink(out);
            cleanup_drop(out);
            free(out);
        }
        if (keep) printf("model kept in %s\n", synthetic);
        free(model);
        free(config);
    }
    printf("\n");
    print_load("at the end");
    cleanup_run();
    free(qfmt);
    if (cfg.json && fclose(cfg.json) != 0) die("%s: %s", json_path, strerror(errno));
    return 0;
}
