/*
 * bench_quant.c - block quantization throughput and quality (not part of the test suite: tests
 * never time anything).
 *
 *     bench_quant [--mib N] [--best-mib N] [--reps N] [--fixtures DIR]
 *
 * Throughput: for each block type (q8_0, q4_0, q4_1, q8_z, q4_z), qfmt_quantize and
 * qfmt_dequantize over a buffer of N MiB of f32 (default 64), in GB/s of f32 processed (the f32
 * input bytes of a quantize, the f32 output bytes of a dequantize, per second), with one thread
 * and with every online CPU, with the scalar and (when the CPU has it) the AVX2 kernels, and for
 * quantize with the reference and the BEST quality. Each figure is the best of --reps runs
 * (default 5) and is printed beside memcpy of a buffer of the same size, measured in the same run
 * with the same number of threads (best of --reps too), as a ratio. The BEST quantizer has only
 * a scalar implementation (the kernel choice does not apply to it) and searches each block, so it
 * runs over the first --best-mib MiB of the buffer (default 4) to keep the run short.
 *
 * Quality (with --fixtures DIR, e.g. tests/data/fixtures): for each model directory holding
 * config.json, expected.json and model.safetensors, the weight RMSE of the reference and of the
 * BEST quantizer for each type over the tensors listed in expected.json's quantized_tensors
 * (blocks along the input dimension: GPT-2's Conv1D weights, stored [in, out], are transposed to
 * [out, in] first when config.json's model_type is "gpt2"), the relative improvement of BEST,
 * and expected.json's rmse_<type> where it has one, with the relative difference of the
 * reference RMSE from it.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qfmt.h"

#define MIB (1024.0 * 1024.0)

static const uint32_t TYPES[] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1, QFMT_TYPE_Q8_Z,
                                 QFMT_TYPE_Q4_Z};
enum { NTYPES = sizeof TYPES / sizeof TYPES[0] };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, const qfmt_error *e)
{
    char buf[1024];
    fprintf(stderr, "bench_quant: %s: %s\n", what,
            e ? qfmt_error_format(e, buf, sizeof buf) : strerror(errno));
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory", NULL);
    return p;
}

/* Weight-like values: roughly normal (sum of four uniforms), sd about 0.02, from a 64-bit LCG. */
static void fill_weights(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        double u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(s >> 11) / 9007199254740992.0;
        }
        x[i] = (float)((u - 2.0) * 0.0346);
    }
}

/* ---- memcpy with T threads ---------------------------------------------------------------- */

typedef struct {
    char *dst;
    const char *src;
    size_t n;
} copy_part;

static void *copy_thread(void *arg)
{
    copy_part *p = arg;
    memcpy(p->dst, p->src, p->n);
    return NULL;
}

/* Copies `bytes` from src to dst split over `threads` threads; returns the elapsed seconds. */
static double timed_copy(char *dst, const char *src, size_t bytes, unsigned threads)
{
    copy_part parts[256];
    pthread_t tid[256];
    if (threads > 256) threads = 256;
    for (unsigned t = 0; t < threads; t++) {
        size_t a = bytes / threads * t, b = t + 1 == threads ? bytes : bytes / threads * (t + 1);
        parts[t] = (copy_part){dst + a, src + a, b - a};
    }
    double t0 = now();
    for (unsigned t = 1; t < threads; t++)
        if (pthread_create(&tid[t], NULL, copy_thread, &parts[t]) != 0) die("pthread_create", NULL);
    copy_thread(&parts[0]);
    for (unsigned t = 1; t < threads; t++) pthread_join(tid[t], NULL);
    return now() - t0;
}

/* GB/s of memcpy of `bytes` (best of reps). */
static double bench_memcpy(size_t bytes, unsigned threads, int reps)
{
    char *a = xmalloc(bytes), *b = xmalloc(bytes);
    memset(a, 1, bytes);
    memset(b, 2, bytes);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = r % 2 ? timed_copy(a, b, bytes, threads) : timed_copy(b, a, bytes, threads);
        best = t < best ? t : best;
    }
    free(a);
    free(b);
    return (double)bytes / best / 1e9;
}

/* ---- Quantize / dequantize throughput ------------------------------------------------------- */

/* GB/s of f32 through qfmt_quantize (quantize) or qfmt_dequantize, best of reps. */
static double bench_kernel(bool quantize, uint32_t type, const float *x, float *y, uint8_t *q,
                           size_t n, const qfmt_quant_opts *o, int reps)
{
    const qfmt_type_traits *tt = qfmt_type_get_traits(type);
    const uint64_t qbytes = n / QFMT_BLOCK_ELEMS * tt->block_bytes, rows = n / 4096;
    qfmt_error e;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        qfmt_status s = quantize
            ? qfmt_quantize(type, q, qbytes, QFMT_TYPE_F32, x, rows, 4096, o, &e)
            : qfmt_dequantize(QFMT_TYPE_F32, y, n * 4, type, q, rows, 4096, o, &e);
        double t = now() - t0;
        if (s != QFMT_OK) die(quantize ? "quantize" : "dequantize", &e);
        best = t < best ? t : best;
    }
    return (double)n * 4.0 / best / 1e9;
}

static void bench_throughput(size_t mib, size_t best_mib, int reps, unsigned cpus)
{
    const size_t n = mib * (1u << 20) / 4, n_best = best_mib * (1u << 20) / 4;
    const bool avx2 = qfmt_kernel_available(QFMT_KERNEL_AVX2);
    float *x = xmalloc(n * 4), *y = xmalloc(n * 4);
    uint8_t *q = xmalloc(n / QFMT_BLOCK_ELEMS * 35);
    fill_weights(x, n, 1);
    memset(y, 0, n * 4);
    memset(q, 0, n / QFMT_BLOCK_ELEMS * 35);

    double mc[2], mc_best[2];
    const unsigned thr[2] = {1, cpus};
    for (int i = 0; i < 2; i++) {
        mc[i] = bench_memcpy(n * 4, thr[i], reps);
        mc_best[i] = bench_memcpy(n_best * 4, thr[i], reps);
    }
    printf("Throughput: GB/s of f32 processed (10^9 bytes/s), best of %d; 'x memcpy' is the ratio to\n"
           "memcpy of a buffer of the same size with the same number of threads, measured in this run.\n",
           reps);
    printf("Buffer: %zu MiB of f32 (%zu values); BEST quantize: first %zu MiB. %u CPUs online. "
           "AVX2 kernels: %s.\n",
           mib, n, best_mib, cpus, avx2 ? "available" : "not available on this CPU");
    printf("memcpy %4zu MiB: 1 thread %6.2f GB/s, %u threads %6.2f GB/s\n", mib, mc[0], cpus, mc[1]);
    printf("memcpy %4zu MiB: 1 thread %6.2f GB/s, %u threads %6.2f GB/s\n\n", best_mib, mc_best[0],
           cpus, mc_best[1]);
    printf("%-5s %-10s %-9s %-6s %7s %9s %9s\n", "type", "op", "quality", "kernel", "threads",
           "GB/s", "x memcpy");

    for (int ti = 0; ti < NTYPES; ti++) {
        const uint32_t type = TYPES[ti];
        const char *tname = qfmt_type_get_traits(type)->name;
        for (int op = 0; op < 2; op++) {          /* quantize, dequantize */
            for (int qual = 0; qual < 2; qual++) { /* reference, best */
                if (op == 1 && qual == 1) continue;
                for (int k = 0; k < 2; k++) {     /* scalar, avx2 */
                    if (k == 1 && (!avx2 || qual == 1)) continue;
                    for (int t = 0; t < 2; t++) {
                        if (t == 1 && cpus == 1) continue;
                        qfmt_quant_opts o = {.threads = thr[t], .quality = qual ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE,
                                             .kernel = k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR};
                        size_t nn = qual ? n_best : n;
                        /* a dequantize reads the reference bytes of the whole buffer */
                        if (op == 1 && k == 0 && t == 0) {
                            qfmt_quant_opts r = {.threads = cpus, .quality = QFMT_QUALITY_REFERENCE, .kernel = QFMT_KERNEL_AUTO};
                            bench_kernel(true, type, x, y, q, n, &r, 1);
                        }
                        double gbs = bench_kernel(op == 0, type, x, y, q, nn, &o, qual ? 1 + reps / 3 : reps);
                        double ref = qual ? mc_best[t] : mc[t];
                        printf("%-5s %-10s %-9s %-6s %7u %9.3f %9.3g\n", tname,
                               op ? "dequantize" : "quantize", qual ? "best" : "reference",
                               qual ? "scalar" : k ? "avx2" : "scalar", thr[t], gbs, gbs / ref);
                        fflush(stdout);
                    }
                }
            }
        }
    }
    free(x);
    free(y);
    free(q);
}

/* ---- Weight RMSE on the fixtures ----------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (len + 1 == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) die("out of memory", NULL);
            buf = nb;
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

static cJSON *read_json(const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return NULL;
    char *text = read_text(path);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

typedef struct {
    double se_ref, se_best; /* sums of squared errors */
    uint64_t count;
} acc;

/* Quantizes x (rows x cols f32) to `type` with quality `qual`, dequantizes, adds the error. */
static void add_error(uint32_t type, qfmt_quality qual, const float *x, uint64_t rows,
                      uint64_t cols, unsigned cpus, float *tmp, uint8_t *q, double *se)
{
    const qfmt_type_traits *tt = qfmt_type_get_traits(type);
    const uint64_t n = rows * cols, qb = n / QFMT_BLOCK_ELEMS * tt->block_bytes;
    qfmt_quant_opts o = {.threads = cpus, .quality = qual, .kernel = QFMT_KERNEL_AUTO};
    qfmt_error e;
    if (qfmt_quantize(type, q, qb, QFMT_TYPE_F32, x, rows, cols, &o, &e) != QFMT_OK) die("quantize", &e);
    if (qfmt_dequantize(QFMT_TYPE_F32, tmp, n * 4, type, q, rows, cols, &o, &e) != QFMT_OK)
        die("dequantize", &e);
    double s = 0;
    for (uint64_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)tmp[i];
        s += d * d;
    }
    *se += s;
}

static int bench_fixture(const char *dir, const char *model, unsigned cpus)
{
    cJSON *cfg = read_json(dir, "config.json"), *exp = read_json(dir, "expected.json");
    char st_path[4096];
    if (snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir) >= (int)sizeof st_path)
        return 0;
    if (!cfg || !exp || access(st_path, R_OK) != 0) {
        cJSON_Delete(cfg);
        cJSON_Delete(exp);
        return 0; /* not a model directory */
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    const bool gpt2 = cJSON_IsString(mt) && strcmp(mt->valuestring, "gpt2") == 0;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(exp, "quantized_tensors");
    qfmt_st_file *st = NULL;
    qfmt_error e;
    if (!cJSON_IsArray(list)) die("expected.json has no quantized_tensors", NULL);
    if (qfmt_st_open(&st, st_path, NULL, &e) != QFMT_OK) die("safetensors", &e);

    acc a[NTYPES];
    memset(a, 0, sizeof a);
    uint64_t ntensors = 0, params = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        if (!cJSON_IsString(item)) continue;
        uint64_t idx;
        qfmt_st_tensor t;
        if (qfmt_st_find(st, item->valuestring, &idx, &e) != QFMT_OK ||
            qfmt_st_get(st, idx, &t, &e) != QFMT_OK)
            die(item->valuestring, &e);
        if (t.ndim != 2) {
            fprintf(stderr, "bench_quant: %s: %s is not 2-D, skipped\n", model, t.name);
            continue;
        }
        const uint64_t n = t.nelements;
        float *src = xmalloc(n * 4), *x = xmalloc(n * 4), *tmp = xmalloc(n * 4);
        uint8_t *q = xmalloc(n / QFMT_BLOCK_ELEMS * 35 + 35);
        if (t.type != QFMT_TYPE_F32 && t.type != QFMT_TYPE_F16 && t.type != QFMT_TYPE_BF16)
            die("fixture tensor is not f32, f16 or bf16", NULL);
        if (qfmt_convert_floats(t.type, t.data, QFMT_TYPE_F32, src, n) != QFMT_OK)
            die("convert", NULL);
        uint64_t rows = t.dims[0], cols = t.dims[1];
        if (gpt2) { /* Conv1D [in, out] -> [out, in]: blocks along the input dimension */
            for (uint64_t i = 0; i < rows; i++)
                for (uint64_t j = 0; j < cols; j++) x[j * rows + i] = src[i * cols + j];
            uint64_t s = rows;
            rows = cols;
            cols = s;
        } else {
            memcpy(x, src, n * 4);
        }
        if (cols % QFMT_BLOCK_ELEMS != 0) {
            fprintf(stderr, "bench_quant: %s: %s rows of %" PRIu64 " values, skipped\n", model,
                    t.name, cols);
        } else {
            for (int ti = 0; ti < NTYPES; ti++) {
                add_error(TYPES[ti], QFMT_QUALITY_REFERENCE, x, rows, cols, cpus, tmp, q, &a[ti].se_ref);
                add_error(TYPES[ti], QFMT_QUALITY_BEST, x, rows, cols, cpus, tmp, q, &a[ti].se_best);
                a[ti].count += n;
            }
            ntensors++;
            params += n;
        }
        free(src);
        free(x);
        free(tmp);
        free(q);
    }
    printf("%s: %" PRIu64 " tensors, %" PRIu64 " weights%s\n", model, ntensors, params,
           gpt2 ? " (Conv1D weights transposed to [out, in])" : "");
    for (int ti = 0; ti < NTYPES; ti++) {
        const char *tname = qfmt_type_get_traits(TYPES[ti])->name;
        double ref = sqrt(a[ti].se_ref / (double)a[ti].count);
        double best = sqrt(a[ti].se_best / (double)a[ti].count);
        char key[64], expected[64] = "-", diff[64] = "-";
        snprintf(key, sizeof key, "rmse_%s", tname);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(exp, key);
        if (cJSON_IsNumber(ev)) {
            snprintf(expected, sizeof expected, "%.9g", ev->valuedouble);
            snprintf(diff, sizeof diff, "%+.2e", (ref - ev->valuedouble) / ev->valuedouble);
        }
        printf("  %-5s reference %.9g  best %.9g  improvement %5.1f%%  expected.json %s (ref rel. diff %s)\n",
               tname, ref, best, 100.0 * (ref - best) / ref, expected, diff);
    }
    qfmt_st_close(st);
    cJSON_Delete(cfg);
    cJSON_Delete(exp);
    return 1;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void bench_fixtures(const char *root, unsigned cpus)
{
    DIR *d = opendir(root);
    if (!d) die(root, NULL);
    char *names[256];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 256)
        if (de->d_name[0] != '.') names[nn++] = strdup(de->d_name);
    closedir(d);
    qsort(names, (size_t)nn, sizeof names[0], cmp_str);
    printf("\nWeight RMSE over each fixture's quantized_tensors (blocks along the input dimension;\n"
           "improvement = (reference - best) / reference; %u threads):\n", cpus);
    int found = 0;
    for (int i = 0; i < nn; i++) {
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", root, names[i]) < (int)sizeof path)
            found += bench_fixture(path, names[i], cpus);
        free(names[i]);
    }
    if (!found) printf("  no model directories (config.json, expected.json, model.safetensors) in %s\n", root);
}

/* ---- Main --------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_quant [--mib N] [--best-mib N] [--reps N] [--fixtures DIR]\n");
}

static size_t parse_pos(const char *flag, const char *s)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || *end != '\0' || v == 0 || v > (1ull << 20)) {
        fprintf(stderr, "bench_quant: %s needs a positive number\n", flag);
        exit(2);
    }
    return (size_t)v;
}

int main(int argc, char **argv)
{
    size_t mib = 64, best_mib = 4;
    int reps = 5;
    const char *fixtures = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mib") == 0) mib = parse_pos("--mib", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--best-mib") == 0) best_mib = parse_pos("--best-mib", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--reps") == 0) reps = (int)parse_pos("--reps", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc) fixtures = argv[++i];
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (best_mib > mib) best_mib = mib;
    long nc = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned cpus = nc > 0 ? (unsigned)nc : 1;
    printf("bench_quant: libqfmt %s\n", qfmt_version_string());
    bench_throughput(mib, best_mib, reps, cpus);
    if (fixtures) bench_fixtures(fixtures, cpus);
    return 0;
}
