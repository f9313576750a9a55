/*
 * bench_io.c - reader and writer throughput, each beside memcpy bandwidth measured in the same
 * run (not part of the test suite: tests never time anything).
 *
 *     bench_io [-d DIR] [-s VERIFY_MIB] [-w WRITE_MIB] [-t THREADS]
 *
 * Prints:
 *   memcpy      single-threaded copy of a 256 MiB buffer, GB/s, best of several;
 *   open        mean time of qfmt_reader_open + close for files of 100 and 10,000 tensors,
 *               beside the time memcpy takes to copy the same metadata + directory bytes;
 *   verify      qfmt_reader_verify on a cached file (default 1 GiB) with 1 thread and with
 *               all online CPUs, GB/s and ratio to memcpy;
 *   write       MB/s of raw tensor bytes through the writer for no codec, zstd level 1 and 3,
 *               with no_fsync and with fsync (bf16 weight-like data, so zstd has work to do).
 * Sizes can also come from the environment: QFMT_BENCH_DIR, QFMT_BENCH_VERIFY_MB,
 * QFMT_BENCH_WRITE_MB. Temporary files go to DIR (default $TMPDIR or /tmp) and are removed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qfmt.h"

#define MIB (1024.0 * 1024.0)

enum {
    MEMCPY_BYTES = 256 << 20,
    MEMCPY_REPS = 5,
    VERIFY_TENSOR_BYTES = 64 << 20,
    WRITE_TENSOR_BYTES = 16 << 20,
    MAX_TEMP_FILES = 8,
};

/* ---- Temporary files: removed at exit and on SIGINT/SIGTERM ------------------------------- */

static char temp_files[MAX_TEMP_FILES][4096];

static void remove_temp_files(void)
{
    for (int i = 0; i < MAX_TEMP_FILES; i++)
        if (temp_files[i][0] != '\0')
            unlink(temp_files[i]); /* async-signal-safe */
}

static void on_signal(int sig)
{
    remove_temp_files();
    signal(sig, SIG_DFL);
    raise(sig);
}

static const char *temp_path(int slot, const char *dir, const char *tag)
{
    snprintf(temp_files[slot], sizeof temp_files[slot], "%s/qfmt_bench_%ld_%s.qf", dir,
             (long)getpid(), tag);
    return temp_files[slot];
}

/* ---- Helpers ------------------------------------------------------------------------------ */

/* "verify   2 threads          : " - every result line starts with such a label. */
static void label(const char *group, const char *fmt, ...)
{
    char what[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    printf("%-8s %-18s: ", group, what);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "bench_io: %s: %s\n", what,
            e ? qfmt_error_format(e, buf, sizeof buf) : strerror(errno));
    exit(1); /* atexit removes the temporary files */
}

static uint64_t env_or(const char *name, uint64_t def)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return def;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || v == 0) {
        fprintf(stderr, "bench_io: %s: '%s' is not a positive number\n", name, s);
        exit(2);
    }
    return (uint64_t)v;
}

/* Deterministic filler: a 64-bit LCG, top bits. */
static void fill_random(void *p, size_t n, uint64_t seed)
{
    uint8_t *b = p;
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = x ^ (x >> 29);
        memcpy(b + i, &v, 8);
    }
    for (; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        b[i] = (uint8_t)(x >> 56);
    }
}

/* BF16 values shaped like trained weights (about N(0, 0.02^2)): compressible exponents,
 * noisy mantissas, so zstd's ratio and speed are realistic rather than best-case. */
static void fill_weights_bf16(uint16_t *dst, size_t n, uint64_t seed)
{
    enum { CHUNK = 4096 };
    float tmp[CHUNK];
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CHUNK ? n - done : CHUNK;
        for (size_t i = 0; i < k; i++) {
            float s = 0.0f; /* sum of 4 uniforms: roughly normal, variance 1/3 */
            for (int j = 0; j < 4; j++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                s += (float)(x >> 40) / 16777216.0f;
            }
            tmp[i] = (s - 2.0f) * 0.0346f;
        }
        qfmt_convert_floats(QFMT_TYPE_F32, tmp, QFMT_TYPE_BF16, dst + done, k);
        done += k;
    }
}

/* ---- memcpy ------------------------------------------------------------------------------- */

static double bench_memcpy(void)
{
    char *a = malloc(MEMCPY_BYTES), *b = malloc(MEMCPY_BYTES);
    if (a == NULL || b == NULL)
        die("out of memory for the memcpy buffers", NULL);
    memset(a, 1, MEMCPY_BYTES); /* fault the pages in before timing */
    memset(b, 2, MEMCPY_BYTES);
    double best = 1e30;
    for (int rep = 0; rep < MEMCPY_REPS; rep++) {
        double t0 = now();
        memcpy(rep % 2 ? a : b, rep % 2 ? b : a, MEMCPY_BYTES);
        double t = now() - t0;
        best = t < best ? t : best;
    }
    volatile char keep = a[12345] + b[54321]; /* the copies must not be optimized away */
    (void)keep;
    free(a);
    free(b);
    return (double)MEMCPY_BYTES / best / 1e9;
}

/* ---- open --------------------------------------------------------------------------------- */

static void write_many_tensors(const char *path, unsigned n)
{
    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts o;
    memset(&o, 0, sizeof o);
    o.no_fsync = true;
    if (qfmt_writer_create(&w, path, &o, &e) != QFMT_OK)
        die("create", &e);
    if (qfmt_writer_set_string(w, "general.architecture", "bench", 5, &e) != QFMT_OK ||
        qfmt_writer_set_u32(w, "bench.block_count", n / 10, &e) != QFMT_OK)
        die("metadata", &e);
    float data[16];
    for (int i = 0; i < 16; i++)
        data[i] = (float)i;
    for (unsigned i = 0; i < n; i++) {
        char name[64];
        qfmt_tensor_desc d;
        memset(&d, 0, sizeof d);
        snprintf(name, sizeof name, "blk.%u.attn_%c.weight", i / 10, "qkvo_gudne"[i % 10]);
        d.name = name;
        d.type = QFMT_TYPE_F32;
        d.ndim = 2;
        d.dims[0] = 4;
        d.dims[1] = 4;
        if (qfmt_writer_add_tensor(w, &d, data, sizeof data, &e) != QFMT_OK)
            die("add tensor", &e);
    }
    if (qfmt_writer_finish(w, &e) != QFMT_OK)
        die("finish", &e);
    qfmt_writer_free(w);
}

static void bench_open(const char *dir, unsigned ntensors, int slot, double memcpy_gbs)
{
    char tag[32];
    snprintf(tag, sizeof tag, "open%u", ntensors);
    const char *path = temp_path(slot, dir, tag);
    write_many_tensors(path, ntensors);

    qfmt_reader *r = NULL;
    qfmt_error e;
    qfmt_file_info fi;
    if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK) /* warm-up: caches, page tables */
        die("open", &e);
    qfmt_reader_file_info(r, &fi);
    qfmt_reader_close(r);

    /* repeat for about half a second, at least 20 times */
    unsigned opens = 0;
    double t0 = now(), t = 0;
    while (opens < 20 || t < 0.5) {
        if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK)
            die("open", &e);
        qfmt_reader_close(r);
        opens++;
        t = now() - t0;
    }
    uint64_t index_bytes = fi.metadata_size + fi.directory_size + QFMT_HEADER_SIZE + QFMT_FOOTER_SIZE;
    double us = t / opens * 1e6;
    double memcpy_us = (double)index_bytes / (memcpy_gbs * 1e9) * 1e6;
    label("open", "%u tensors", ntensors);
    printf("%8.1f us  (mean of %u opens; header+index %.1f KiB: %.0f x memcpy of it, %.2f us "
           "at %.1f GB/s)\n",
           us, opens, (double)index_bytes / 1024.0, us / memcpy_us, memcpy_us, memcpy_gbs);
    unlink(path);
    temp_files[slot][0] = '\0';
}

/* ---- verify ------------------------------------------------------------------------------- */

static void bench_verify(const char *dir, uint64_t bytes, unsigned cpus, double memcpy_gbs)
{
    const char *path = temp_path(2, dir, "verify");
    size_t tensor_bytes = bytes < VERIFY_TENSOR_BYTES ? (size_t)bytes : VERIFY_TENSOR_BYTES;
    tensor_bytes &= ~(size_t)3;
    if (tensor_bytes == 0)
        tensor_bytes = 4;
    uint64_t ntensors = (bytes + tensor_bytes - 1) / tensor_bytes;
    void *buf = malloc(tensor_bytes);
    if (buf == NULL)
        die("out of memory", NULL);
    fill_random(buf, tensor_bytes, 7);

    qfmt_writer *w = NULL;
    qfmt_error e;
    qfmt_write_opts o;
    memset(&o, 0, sizeof o);
    o.no_fsync = true;
    if (qfmt_writer_create(&w, path, &o, &e) != QFMT_OK)
        die("create", &e);
    for (uint64_t i = 0; i < ntensors; i++) {
        char name[64];
        qfmt_tensor_desc d;
        memset(&d, 0, sizeof d);
        snprintf(name, sizeof name, "blk.%" PRIu64 ".weight", i);
        d.name = name;
        d.type = QFMT_TYPE_F32;
        d.ndim = 1;
        d.dims[0] = tensor_bytes / 4;
        ((uint32_t *)buf)[0] = (uint32_t)i; /* distinct tensors */
        if (qfmt_writer_add_tensor(w, &d, buf, tensor_bytes, &e) != QFMT_OK)
            die("add tensor", &e);
    }
    if (qfmt_writer_finish(w, &e) != QFMT_OK)
        die("finish", &e);
    qfmt_writer_free(w);
    free(buf);

    qfmt_reader *r = NULL;
    if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK)
        die("open", &e);
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    if (qfmt_reader_verify(r, cpus, &e) != QFMT_OK) /* warm-up: page cache and mapping */
        die("verify", &e);

    label("verify", "file");
    printf("%.0f MiB, %" PRIu64 " tensors of %.0f MiB, in the page cache\n",
           (double)fi.file_size / MIB, ntensors, (double)tensor_bytes / MIB);
    unsigned thread_counts[2] = {1, cpus};
    for (int k = 0; k < (cpus > 1 ? 2 : 1); k++) {
        double best = 1e30;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now();
            if (qfmt_reader_verify(r, thread_counts[k], &e) != QFMT_OK)
                die("verify", &e);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        double gbs = (double)fi.file_size / best / 1e9;
        label("verify", "%u thread%s", thread_counts[k], thread_counts[k] == 1 ? "" : "s");
        printf("%8.2f GB/s  (%.2f x memcpy %.1f GB/s; best of 3)\n", gbs, gbs / memcpy_gbs,
               memcpy_gbs);
    }
    qfmt_reader_close(r);
    unlink(path);
    temp_files[2][0] = '\0';
}

/* ---- write -------------------------------------------------------------------------------- */

static void bench_write(const char *dir, uint64_t bytes, double memcpy_gbs)
{
    size_t tensor_bytes = bytes < WRITE_TENSOR_BYTES ? (size_t)bytes : WRITE_TENSOR_BYTES;
    tensor_bytes &= ~(size_t)1;
    if (tensor_bytes == 0)
        tensor_bytes = 2;
    uint64_t ntensors = (bytes + tensor_bytes - 1) / tensor_bytes;
    uint16_t *buf = malloc(tensor_bytes);
    if (buf == NULL)
        die("out of memory", NULL);
    fill_weights_bf16(buf, tensor_bytes / 2, 11);

    static const struct { const char *name; uint32_t codec; int level; } codecs[] = {
        {"none", QFMT_CODEC_NONE, 0},
        {"zstd:1", QFMT_CODEC_ZSTD, 1},
        {"zstd:3", QFMT_CODEC_ZSTD, 3},
    };
    const char *path = temp_path(3, dir, "write");
    label("write", "data");
    printf("%.0f MiB of bf16 weights, %" PRIu64 " tensors of %.0f MiB\n",
           (double)(ntensors * tensor_bytes) / MIB, ntensors, (double)tensor_bytes / MIB);
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++) {
        for (int sync = 0; sync < 2; sync++) {
            qfmt_writer *w = NULL;
            qfmt_error e;
            qfmt_write_opts o;
            memset(&o, 0, sizeof o);
            o.no_fsync = !sync;
            double t0 = now();
            if (qfmt_writer_create(&w, path, &o, &e) != QFMT_OK)
                die("create", &e);
            for (uint64_t i = 0; i < ntensors; i++) {
                char name[64];
                qfmt_tensor_desc d;
                memset(&d, 0, sizeof d);
                snprintf(name, sizeof name, "blk.%" PRIu64 ".weight", i);
                d.name = name;
                d.type = QFMT_TYPE_BF16;
                d.ndim = 2;
                d.dims[0] = tensor_bytes / 2 / 1024 ? tensor_bytes / 2 / 1024 : 1;
                d.dims[1] = tensor_bytes / 2 / d.dims[0];
                d.codec = codecs[c].codec;
                d.zstd_level = codecs[c].level;
                if (qfmt_writer_add_tensor(w, &d, buf, d.dims[0] * d.dims[1] * 2, &e) != QFMT_OK)
                    die("add tensor", &e);
            }
            if (qfmt_writer_finish(w, &e) != QFMT_OK)
                die("finish", &e);
            double t = now() - t0;
            qfmt_writer_free(w);

            qfmt_reader *r = NULL;
            if (qfmt_reader_open(&r, path, NULL, &e) != QFMT_OK)
                die("open", &e);
            qfmt_file_info fi;
            qfmt_reader_file_info(r, &fi);
            qfmt_reader_close(r);
            double raw = (double)(ntensors * tensor_bytes);
            double mbs = raw / t / 1e6;
            label("write", "%s, %s", codecs[c].name, sync ? "fsync" : "no_fsync");
            printf("%8.1f MB/s  (%.3f x memcpy %.1f GB/s; data %.1f%% of raw)\n", mbs,
                   mbs / 1e3 / memcpy_gbs, memcpy_gbs, 100.0 * (double)fi.data_size / raw);
            unlink(path);
        }
    }
    temp_files[3][0] = '\0';
    free(buf);
}

/* ---- main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_io [-d DIR] [-s VERIFY_MIB] [-w WRITE_MIB] [-t THREADS]\n"
               "  -d DIR         directory for temporary files ($QFMT_BENCH_DIR, $TMPDIR, /tmp)\n"
               "  -s VERIFY_MIB  size of the verify file ($QFMT_BENCH_VERIFY_MB, default 1024)\n"
               "  -w WRITE_MIB   bytes written per write test ($QFMT_BENCH_WRITE_MB, default 256)\n"
               "  -t THREADS     threads for the multi-threaded verify (default: online CPUs)\n");
}

static uint64_t parse_arg(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || v == 0 || v > (1ull << 24)) {
        usage(stderr);
        exit(2);
    }
    return (uint64_t)v;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("QFMT_BENCH_DIR");
    if (dir == NULL || *dir == '\0')
        dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    uint64_t verify_mib = env_or("QFMT_BENCH_VERIFY_MB", 1024);
    uint64_t write_mib = env_or("QFMT_BENCH_WRITE_MB", 256);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cpus = ncpu < 1 ? 1 : (unsigned)ncpu;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (strcmp(argv[i], "-d") == 0)
            dir = argv[++i];
        else if (strcmp(argv[i], "-s") == 0)
            verify_mib = parse_arg(argv[++i]);
        else if (strcmp(argv[i], "-w") == 0)
            write_mib = parse_arg(argv[++i]);
        else if (strcmp(argv[i], "-t") == 0)
            cpus = (unsigned)parse_arg(argv[++i]);
        else {
            usage(stderr);
            return 2;
        }
    }

    atexit(remove_temp_files);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    printf("bench_io: libqfmt %s, %u CPUs, temporary files in %s\n", qfmt_version_string(), cpus,
           dir);
    double memcpy_gbs = bench_memcpy();
    label("memcpy", "1 thread");
    printf("%8.2f GB/s  (%d MiB buffer, best of %d)\n", memcpy_gbs, MEMCPY_BYTES >> 20,
           MEMCPY_REPS);
    fflush(stdout);
    bench_open(dir, 100, 0, memcpy_gbs);
    bench_open(dir, 10000, 1, memcpy_gbs);
    fflush(stdout);
    bench_verify(dir, verify_mib << 20, cpus, memcpy_gbs);
    fflush(stdout);
    bench_write(dir, write_mib << 20, memcpy_gbs);
    return 0;
}
