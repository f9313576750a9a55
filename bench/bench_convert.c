/*
 * bench_convert.c - throughput and peak memory of `qfmt convert` on a model of more than 2 GB,
 * and of `qfmt verify` on its outputs, each beside memcpy bandwidth measured in the same run
 * (not part of the test suite: tests never time anything).
 *
 *     bench_convert [QFMT] [--dir DIR] [--keep] [--repeat R]
 *
 * First synthesises a Hugging Face checkpoint with TinyLlama-1.1B's shape and random BF16
 * weights (hidden 2048, ffn 5632, 22 layers, 32 heads, 4 KV heads, vocab 32000; LLaMA tensor
 * names; config.json with model_type llama), streamed to DIR/model.safetensors in 8 MiB chunks
 * so that the 2.2 GB never sit in memory. Then, for T in f16, q8_0, q4_0 and N in 1, 2, runs
 *     QFMT convert DIR -o DIR/out-T.qfmt --type T --threads N
 * and reports MB/s of input and the child's peak RSS (wait4's ru_maxrss), and runs
 *     QFMT verify DIR/out-T.qfmt --threads N
 * and reports MB/s of the file. The model is written just before, so convert reads it from the
 * page cache: the numbers are the converter's, not the disk's (but convert's own output goes
 * through write() and fsync). Each convert runs R times (default 1), each verify 3 times after
 * a warm-up; the fastest run is reported (peak RSS: the largest).
 *
 * QFMT is the qfmt binary: the first argument, else $QFMT_CLI, else ../tools/qfmt beside this
 * program's directory (the build tree's layout). DIR defaults to a new directory under $TMPDIR
 * (or /tmp), removed at the end; it needs about 5 GB free (model + the f16 output). --keep leaves
 * the model in DIR (outputs are always removed); a later run with the same --dir reuses it.
 */
#define _GNU_SOURCE /* wait4 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "qfmt.h"
#include "qfmt_model.h"

/* TinyLlama-1.1B */
enum {
    HIDDEN = 2048,
    FFN = 5632,
    LAYERS = 22,
    HEADS = 32,
    KV_HEADS = 4,
    HEAD_DIM = HIDDEN / HEADS,
    VOCAB = 32000,
    NTENSORS = 3 + 9 * LAYERS,
};

enum {
    CHUNK_BYTES = 8 << 20,   /* generated and written at a time */
    MEMCPY_BYTES = 256 << 20,
    MEMCPY_REPS = 5,
};

typedef struct {
    char name[80];
    uint64_t dims[2];
    uint32_t ndim;
    bool norm;               /* RMSNorm weight: values near 1 */
    uint64_t begin, end;     /* data_offsets */
} tensor;

static tensor tensors[NTENSORS];
static size_t ntensors;

/* ---- Cleanup: files removed at exit and on SIGINT/SIGTERM --------------------------------- */

enum { MAX_CLEANUP = 16 };
static char cleanup_paths[MAX_CLEANUP][PATH_MAX];
static bool cleanup_is_dir[MAX_CLEANUP];

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

/* Files first, then directories (registered before the files they hold). */
static void cleanup_run(void)
{
    for (int pass = 0; pass < 2; pass++)
        for (int i = MAX_CLEANUP - 1; i >= 0; i--)
            if (cleanup_paths[i][0] != '\0' && cleanup_is_dir[i] == (pass == 1)) {
                if (pass == 0) unlink(cleanup_paths[i]); /* async-signal-safe */
                else rmdir(cleanup_paths[i]);
            }
}

static volatile sig_atomic_t child_pid; /* the qfmt being run, or 0 */
static char temp_dir[PATH_MAX];         /* where qfmt's OUT.tmp.* files may be left */

/* With a qfmt running, passes the signal on: run() sees it die and stops the benchmark (then
 * cleanup_temps removes what it left). Without, removes our files and dies of the signal. */
static void on_signal(int sig)
{
    if (child_pid > 0) {
        kill((pid_t)child_pid, sig);
        return;
    }
    cleanup_run();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Removes "*.qfmt.tmp.*" files a killed qfmt left in temp_dir. */
static void cleanup_temps(void)
{
    if (temp_dir[0] == '\0') return;
    DIR *d = opendir(temp_dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "out-", 4) == 0 && strstr(e->d_name, ".qfmt.tmp.")) {
            char p[PATH_MAX + 256];
            snprintf(p, sizeof p, "%s/%s", temp_dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_convert: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    cleanup_temps();
    cleanup_run();
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (!p) die("out of memory");
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ---- The model -------------------------------------------------------------------------- */

static void add_tensor(const char *name, uint64_t d0, uint64_t d1, bool norm)
{
    tensor *t = &tensors[ntensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->ndim = d1 ? 2 : 1;
    t->norm = norm;
}

static uint64_t tensor_bytes(const tensor *t)
{
    return 2 * t->dims[0] * (t->ndim == 2 ? t->dims[1] : 1);
}

/* Every tensor of the table but optional biases (the untied head is optional and kept). */
static bool plan_one(void *ctx, const qfmt_family_tensor *t)
{
    (void)ctx;
    if (!t->optional || t->ndim == 2) add_tensor(t->name, t->dims[0], t->ndim == 2 ? t->dims[1] : 0, t->ndim == 1);
    return true;
}

/* The tensor list in the usual checkpoint order, with data_offsets; returns the data size. */
static uint64_t plan_model(uint64_t *largest)
{
    ntensors = 0;
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.vocab = VOCAB, h.d = HIDDEN, h.layers = LAYERS, h.heads = HEADS, h.kv_heads = KV_HEADS;
    h.head_dim = HEAD_DIM, h.ffn = FFN, h.ctx = 2048;
    qfmt_error e;
    /* The family's own tensor list (libqfmt_model/src/families/llama.c), untied head included. */
    if (qfmt_family_tensors(qfmt_family_find("llama", 5), &h, plan_one, NULL, &e) != QFMT_OK)
        die("tensor list: %s", e.message);
    uint64_t at = 0;
    *largest = 0;
    for (size_t i = 0; i < ntensors; i++) {
        tensors[i].begin = at;
        at += tensor_bytes(&tensors[i]);
        tensors[i].end = at;
        if (tensor_bytes(&tensors[i]) > *largest) *largest = tensor_bytes(&tensors[i]);
    }
    return at;
}

/* The safetensors JSON header, padded with spaces to a multiple of 8 bytes. */
static char *make_header(size_t *len)
{
    size_t cap = 64 + ntensors * 192, n = 0;
    char *h = malloc(cap);
    if (!h) die("out of memory");
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < ntensors; i++) {
        const tensor *t = &tensors[i];
        if (t->ndim == 2)
            n += (size_t)snprintf(h + n, cap - n,
                                  ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%" PRIu64 ",%" PRIu64
                                  "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
                                  t->name, t->dims[0], t->dims[1], t->begin, t->end);
        else
            n += (size_t)snprintf(h + n, cap - n,
                                  ",\"%s\":{\"dtype\":\"BF16\",\"shape\":[%" PRIu64
                                  "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}",
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

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest even; values here are finite */
    return (uint16_t)(u >> 16);
}

/* n BF16 values: bell-shaped (sum of four uniforms), standard deviation about 0.02 for
 * weights, 1 +- 0.05 for norms. */
static void fill_bf16(uint16_t *out, size_t n, bool norm, uint64_t *seed)
{
    const float scale = 0.02f / 37837.0f; /* sd of a sum of 4 uniform 16-bit values: 65536 / sqrt(3) */
    for (size_t i = 0; i < n; i++) {
        uint64_t r = splitmix64(seed);
        int32_t s = (int32_t)(r & 0xFFFF) + (int32_t)((r >> 16) & 0xFFFF) + (int32_t)((r >> 32) & 0xFFFF) +
                    (int32_t)(r >> 48) - 2 * 65535;
        float v = (float)s * scale;
        out[i] = to_bf16(norm ? 1.0f + 2.5f * v : v);
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

static void write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die("%s: cannot create: %s", path, strerror(errno));
    write_all(fd, text, strlen(text), path);
    if (close(fd) != 0) die("%s: close failed: %s", path, strerror(errno));
}

static void write_config(const char *dir)
{
    qfmt_model_hparams h;
    memset(&h, 0, sizeof h);
    h.vocab = VOCAB, h.d = HIDDEN, h.layers = LAYERS, h.heads = HEADS, h.kv_heads = KV_HEADS;
    h.head_dim = HEAD_DIM, h.ffn = FFN, h.ctx = 2048, h.eps = 1e-5, h.rope_theta = 10000.0;
    h.rope_freq_type = QFMT_TYPE_BF16;
    /* config.json under the family's own key names (libqfmt_model/src/families/llama.c) */
    char *cfg = qfmt_family_config_json(qfmt_family_find("llama", 5), &h, false);
    if (!cfg) die("out of memory");
    char *p = path_join(dir, "config.json");
    write_text(p, cfg);
    free(cfg);
    free(p);
}

/* Writes DIR/model.safetensors (through a temporary name, so that an interrupted run is never
 * reused) and DIR/config.json. */
static void write_model(const char *dir, uint64_t data_size)
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
    uint64_t seed = 0x51F0A7ull, written = 0;
    double t0 = now();
    for (size_t i = 0; i < ntensors; i++) {
        uint64_t left = tensor_bytes(&tensors[i]);
        while (left) {
            size_t n = left < CHUNK_BYTES ? (size_t)left : CHUNK_BYTES;
            fill_bf16(chunk, n / 2, tensors[i].norm, &seed);
            write_all(fd, chunk, n, tmp);
            left -= n;
            written += n;
        }
        if (isatty(STDERR_FILENO))
            fprintf(stderr, "\rwriting the model: %3.0f%%", 100.0 * (double)written / (double)data_size);
    }
    if (isatty(STDERR_FILENO)) fputc('\n', stderr);
    /* on disk before the timings start: no writeback of the model competes with them */
    if (fsync(fd) != 0) die("%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) != 0) die("%s: close failed: %s", tmp, strerror(errno));
    if (rename(tmp, final) != 0) die("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    cleanup_drop(tmp);
    write_config(dir);
    double dt = now() - t0;
    printf("model: %zu tensors, %.0f MB (BF16, %.2f s to synthesise, write and fsync, %.0f MB/s)\n", ntensors,
           (double)(8 + hlen + data_size) / 1e6, dt, (double)(8 + hlen + data_size) / 1e6 / dt);
    free(chunk);
    free(header);
    free(tmp);
    free(final);
}

/* ---- Running qfmt ------------------------------------------------------------------------ */

typedef struct {
    double seconds;
    long maxrss_kib;
    char out[512]; /* the first line of its stdout */
} run_result;

/* Runs argv (argv[0] a path), stdout captured, stderr inherited. Dies unless it exits 0. */
static run_result run(char *const argv[])
{
    run_result r;
    memset(&r, 0, sizeof r);
    int pfd[2];
    if (pipe(pfd) != 0) die("pipe: %s", strerror(errno));
    fflush(stdout);
    double t0 = now();
    pid_t pid = fork();
    if (pid < 0) die("fork: %s", strerror(errno));
    child_pid = pid;
    if (pid == 0) {
        dup2(pfd[1], STDOUT_FILENO);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        fprintf(stderr, "bench_convert: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    size_t n = 0;
    char buf[4096];
    ssize_t k;
    while ((k = read(pfd[0], buf, sizeof buf)) != 0) {
        if (k < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (ssize_t i = 0; i < k && n + 1 < sizeof r.out; i++) r.out[n++] = buf[i];
    }
    close(pfd[0]);
    r.out[n] = '\0';
    char *nl = strchr(r.out, '\n');
    if (nl) *nl = '\0';
    int status;
    struct rusage ru;
    pid_t w;
    while ((w = wait4(pid, &status, 0, &ru)) < 0 && errno == EINTR) {}
    child_pid = 0;
    r.seconds = now() - t0;
    if (w < 0) die("wait4: %s", strerror(errno));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_convert: failed (%s %d):", WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        for (int i = 0; argv[i]; i++) fprintf(stderr, " %s", argv[i]);
        fputc('\n', stderr);
        die("stopping");
    }
    r.maxrss_kib = ru.ru_maxrss;
    return r;
}

/* The fastest of n runs, with the largest peak RSS. */
static run_result best_of(char *const argv[], int n)
{
    run_result best = run(argv);
    for (int i = 1; i < n; i++) {
        run_result r = run(argv);
        long rss = r.maxrss_kib > best.maxrss_kib ? r.maxrss_kib : best.maxrss_kib;
        if (r.seconds < best.seconds) best = r;
        best.maxrss_kib = rss;
    }
    return best;
}

static double memcpy_bandwidth(void)
{
    char *a = malloc(MEMCPY_BYTES), *b = malloc(MEMCPY_BYTES);
    if (!a || !b) die("out of memory");
    memset(a, 1, MEMCPY_BYTES);
    memset(b, 2, MEMCPY_BYTES);
    double best = 1e9;
    for (int i = 0; i < MEMCPY_REPS; i++) {
        double t0 = now();
        memcpy(i % 2 ? a : b, i % 2 ? b : a, MEMCPY_BYTES);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    volatile char sink = a[12345] + b[54321];
    (void)sink;
    free(a);
    free(b);
    return MEMCPY_BYTES / best; /* bytes/s */
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* The qfmt binary: argument, $QFMT_CLI, or ../tools/qfmt relative to this program. */
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

static void usage(FILE *f)
{
    fputs("usage: bench_convert [QFMT] [--dir DIR] [--keep] [--repeat R]\n"
          "Synthesises a TinyLlama-1.1B-shaped BF16 model (2.2 GB) and times `QFMT convert` at f16,\n"
          "q8_0 and q4_0 with 1 and 2 threads (MB/s of input, peak RSS) and `QFMT verify`, beside\n"
          "memcpy bandwidth. QFMT: the qfmt binary (default $QFMT_CLI, else ../tools/qfmt next to\n"
          "this program). DIR: where the model goes (default: a new directory under $TMPDIR or\n"
          "/tmp, removed at the end). --keep: leave the model in DIR and reuse it next time.\n"
          "--repeat R: run each conversion R times and report the fastest (default 1).\n",
          f);
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL, *qfmt_arg = NULL;
    bool keep = false;
    int repeat = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir_arg = argv[++i];
        } else if (strcmp(argv[i], "--keep") == 0) {
            keep = true;
        } else if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            repeat = atoi(argv[++i]);
            if (repeat < 1 || repeat > 100) {
                usage(stderr);
                return 2;
            }
        } else if (argv[i][0] != '-' && !qfmt_arg) {
            qfmt_arg = argv[i];
        } else {
            usage(stderr);
            return 2;
        }
    }
    char *qfmt = find_qfmt(qfmt_arg);
    if (!qfmt || access(qfmt, X_OK) != 0) die("%s: not an executable qfmt binary", qfmt ? qfmt : "?");

    char dir[PATH_MAX];
    if (dir_arg) {
        snprintf(dir, sizeof dir, "%s", dir_arg);
        if (mkdir(dir, 0755) == 0) {
            if (!keep) cleanup_add(dir, true);
        } else if (errno != EEXIST) {
            die("%s: cannot create: %s", dir, strerror(errno));
        }
    } else {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/qfmt_bench_convert.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) die("%s: cannot create: %s", dir, strerror(errno));
        cleanup_add(dir, true);
    }
    snprintf(temp_dir, sizeof temp_dir, "%s", dir);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: a blocked read or wait4 returns EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t largest, data_size = plan_model(&largest);
    size_t hlen;
    free(make_header(&hlen));
    uint64_t model_size = 8 + hlen + data_size;
    char *model = path_join(dir, "model.safetensors");
    char *config = path_join(dir, "config.json");
    bool reuse = file_size(model) == model_size && access(config, R_OK) == 0;
    if (!keep) {
        cleanup_add(model, false);
        cleanup_add(config, false);
    }
    struct statvfs vfs;
    uint64_t need = (reuse ? 0 : model_size) + data_size + (256u << 20); /* + the f16 output */
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need)
        die("%s: %.1f GB free, %.1f GB needed", dir, (double)vfs.f_bavail * vfs.f_frsize / 1e9, need / 1e9);

    printf("bench_convert: %s, model in %s\n", qfmt, dir);
    double mc = memcpy_bandwidth();
    printf("memcpy: %.0f MB/s (one thread, %d MiB, best of %d)\n", mc / 1e6, MEMCPY_BYTES >> 20, MEMCPY_REPS);
    if (reuse) printf("model: reusing %s (%.0f MB)\n", model, (double)model_size / 1e6);
    else write_model(dir, data_size);
    printf("model %.0f MB, %zu tensors, largest tensor %.0f MB (BF16 [%d, %d]; %.0f MB as f32)\n",
           (double)model_size / 1e6, ntensors, (double)largest / 1e6, VOCAB, HIDDEN, 2.0 * (double)largest / 1e6);

    static const char *const types[] = {"f16", "q8_0", "q4_0"};
    static const char *const threads[] = {"1", "2"};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        char name[32];
        snprintf(name, sizeof name, "out-%s.qfmt", types[ti]);
        char *out = path_join(dir, name);
        cleanup_add(out, false);
        for (size_t ni = 0; ni < sizeof threads / sizeof threads[0]; ni++) {
            char *cargv[] = {qfmt, "convert", dir, "-o", out, "--type", (char *)types[ti],
                             "--threads", (char *)threads[ni], NULL};
            run_result r = best_of(cargv, repeat);
            double mbs = (double)model_size / 1e6 / r.seconds;
            printf("convert %-4s %s thread%s: %5.0f MB/s input (%.2f s, %.2fx memcpy), peak RSS %ld MiB "
                   "(model %.0f MB, largest tensor %.0f MB), output %.0f MB\n",
                   types[ti], threads[ni], strcmp(threads[ni], "1") ? "s" : " ", mbs, r.seconds,
                   mbs * 1e6 / mc, r.maxrss_kib / 1024, (double)model_size / 1e6, (double)largest / 1e6,
                   (double)file_size(out) / 1e6);
            printf("    qfmt: %s\n", r.out);
        }
        uint64_t osz = file_size(out);
        for (size_t ni = 0; ni < sizeof threads / sizeof threads[0]; ni++) {
            char *vargv[] = {qfmt, "verify", out, "--threads", (char *)threads[ni], NULL};
            run(vargv); /* warm-up: the file into the page cache */
            run_result r = best_of(vargv, 3);
            double mbs = (double)osz / 1e6 / r.seconds;
            printf("verify  %-4s %s thread%s: %5.0f MB/s (%.0f MB in %.2f s, %.2fx memcpy), peak RSS %ld MiB\n",
                   types[ti], threads[ni], strcmp(threads[ni], "1") ? "s" : " ", mbs, (double)osz / 1e6,
                   r.seconds, mbs * 1e6 / mc, r.maxrss_kib / 1024);
        }
        unlink(out);
        cleanup_drop(out);
        free(out);
    }
    printf("memcpy: %.0f MB/s\n", mc / 1e6);
    if (keep) printf("model kept in %s\n", dir);
    cleanup_run();
    free(model);
    free(config);
    free(qfmt);
    return 0;
}
