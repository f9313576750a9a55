/*
 * bench_quant.c - block quantization throughput and quality (not part of the test suite: tests
 * never time anything).
 *
 *     bench_quant [--mib N] [--best-mib N] [--reps N] [--types LIST] [--fixtures DIR]
 *
 * Throughput: for each block type (q8_0, q4_0, q4_1, q8_z, q4_z, q5_0, q5_1, q2_k, q3_k, q4_k,
 * q5_k, q6_k, iq4_nl, iq4_xs; --types q4_k,q6_k for some), qfmt_quantize and qfmt_dequantize
 * over a buffer of N MiB of f32 (default 64) in rows of 4096 values, in GB/s of f32 processed
 * (the f32 input bytes of a quantize, the f32 output bytes of a dequantize, per second), with
 * one thread and with every online CPU, with the scalar and (when the type has one and the CPU
 * has AVX2) the AVX2 kernels. Quantize also runs with the BEST quality (for the types whose
 * search differs from the reference: q8_0, q4_0, q4_1, q8_z, q4_z) and with importance (a
 * per-column weight, as from an imatrix: the type's weighted quantizer on whole rows). Each
 * figure is the best of --reps runs (default 5) and is printed beside memcpy of a buffer of the
 * same size, measured in the same run with the same number of threads (best of --reps too), as
 * a ratio. BEST and importance are slow searches with a scalar implementation only (the kernel
 * choice does not apply to them), so they run over the first --best-mib MiB of the buffer
 * (default 4), 1 + reps/3 times; so does the reference quantizer of the K types and iq4, itself
 * a search (ggml's), --reps times.
 *
 * Quality (with --fixtures DIR, e.g. tests/data/fixtures): for each model directory holding
 * config.json, expected.json and model.safetensors, the weight RMSE of the reference and of the
 * BEST quantizer for each type over the tensors listed in expected.json's quantized_tensors
 * (blocks along the input dimension: GPT-2's Conv1D weights, stored [in, out], are transposed to
 * [out, in] first when config.json's model_type is "gpt2"; tensors whose rows do not hold whole
 * blocks of a type are left out of that type's figures), the relative improvement of BEST, and
 * expected.json's rmse_<type> where it has one, with the relative difference of the reference
 * RMSE from it.
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

#define QFMT_STATIC_LINKING_ONLY /* qfmt_quant_kernels_get: which types have AVX2 / BEST kernels */
#include "qfmt.h"

#define MIB (1024.0 * 1024.0)

static const uint32_t ALL_TYPES[] = {QFMT_TYPE_Q8_0, QFMT_TYPE_Q4_0, QFMT_TYPE_Q4_1, QFMT_TYPE_Q8_Z,
                                     QFMT_TYPE_Q4_Z, QFMT_TYPE_Q5_0, QFMT_TYPE_Q5_1, QFMT_TYPE_Q2_K,
                                     QFMT_TYPE_Q3_K, QFMT_TYPE_Q4_K, QFMT_TYPE_Q5_K, QFMT_TYPE_Q6_K,
                                     QFMT_TYPE_IQ4_NL, QFMT_TYPE_IQ4_XS};
enum { MAX_TYPES = sizeof ALL_TYPES / sizeof ALL_TYPES[0], ROW = 4096 /* values per row */ };

/* The types benchmarked (--types), in ALL_TYPES order by default. */
static uint32_t TYPES[MAX_TYPES];
static int NTYPES;

/* Whether the type has a BEST search of its own (else BEST is its reference). */
static bool has_best(uint32_t type)
{
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    return k->quantize_best != k->quantize_ref;
}

/* Whether the type's reference quantizer is itself a search (the K types and iq4: ggml's), slow
 * as BEST is. */
static bool ref_searches(uint32_t type)
{
    return (type >= QFMT_TYPE_Q2_K && type <= QFMT_TYPE_Q6_K) || type == QFMT_TYPE_IQ4_NL ||
           type == QFMT_TYPE_IQ4_XS;
}

/* Whether the type has AVX2 kernels of its own (else every level runs the reference). */
static bool has_avx2(uint32_t type, bool quantize)
{
    const qfmt_quant_kernels *k = qfmt_quant_kernels_get(type);
    return quantize ? k->quantize_avx2 != NULL : k->dequantize_avx2 != NULL;
}

/* Bytes of n values of `type` (n a multiple of its block). */
static uint64_t qbytes(uint32_t type, uint64_t n)
{
    const qfmt_type_traits *tt = qfmt_type_get_traits(type);
    return n / tt->block_elems * tt->block_bytes;
}

/* The most bytes n values take in any block type (q8_z: 35 per 32), whole blocks rounded up. */
static uint64_t max_qbytes(uint64_t n) { return (n / 32 + 9) * 35; }

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

/* GB/s of f32 through qfmt_quantize (quantize) or qfmt_dequantize, best of reps; n values in
 * rows of ROW. */
static double bench_kernel(bool quantize, uint32_t type, const float *x, float *y, uint8_t *q,
                           size_t n, const qfmt_quant_opts *o, int reps)
{
    const uint64_t qb = qbytes(type, n), rows = n / ROW;
    qfmt_error e;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        qfmt_status s = quantize
            ? qfmt_quantize(type, q, qb, QFMT_TYPE_F32, x, rows, ROW, o, &e)
            : qfmt_dequantize(QFMT_TYPE_F32, y, n * 4, type, q, rows, ROW, o, &e);
        double t = now() - t0;
        if (s != QFMT_OK) die(quantize ? "quantize" : "dequantize", &e);
        best = t < best ? t : best;
    }
    return (double)n * 4.0 / best / 1e9;
}

/* Per-column importance like an imatrix's (mean squared activations): positive, spread over
 * two orders of magnitude, every 61st column 0 (a column no token activates). */
static void fill_importance(float *w, size_t n)
{
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) / 9007199254740992.0;
        w[i] = i % 61 == 7 ? 0.0f : (float)(0.05 * exp(4.6 * u));
    }
}

typedef enum { OP_QUANT, OP_QUANT_BEST, OP_QUANT_IMP, OP_DEQUANT } op_kind;

static void bench_throughput(size_t mib, size_t best_mib, int reps, unsigned cpus)
{
    const size_t n = mib * (1u << 20) / 4, n_best = best_mib * (1u << 20) / 4;
    const bool avx2 = qfmt_kernel_available(QFMT_KERNEL_AVX2);
    float *x = xmalloc(n * 4), *y = xmalloc(n * 4), *imp = xmalloc(ROW * sizeof *imp);
    uint8_t *q = xmalloc(max_qbytes(n));
    fill_weights(x, n, 1);
    fill_importance(imp, ROW);
    memset(y, 0, n * 4);
    memset(q, 0, max_qbytes(n));

    double mc[2], mc_best[2];
    const unsigned thr[2] = {1, cpus};
    for (int i = 0; i < 2; i++) {
        mc[i] = bench_memcpy(n * 4, thr[i], reps);
        mc_best[i] = bench_memcpy(n_best * 4, thr[i], reps);
    }
    printf("Throughput: GB/s of f32 processed (10^9 bytes/s), best of %d; 'x memcpy' is the ratio to\n"
           "memcpy of a buffer of the same size with the same number of threads, measured in this run.\n",
           reps);
    printf("Buffer: %zu MiB of f32 (%zu values, rows of %d); BEST, importance and the K types' and\n"
           "iq4's reference quantize (searches): first %zu MiB.\n"
           "%u CPUs online. AVX2 kernels: %s.\n",
           mib, n, ROW, best_mib, cpus, avx2 ? "available" : "not available on this CPU");
    printf("memcpy %4zu MiB: 1 thread %6.2f GB/s, %u threads %6.2f GB/s\n", mib, mc[0], cpus, mc[1]);
    printf("memcpy %4zu MiB: 1 thread %6.2f GB/s, %u threads %6.2f GB/s\n", best_mib, mc_best[0],
           cpus, mc_best[1]);
    printf("Types without kernels of their own for a level run the reference at every level (one\n"
           "'scalar' line); BEST is listed only where it differs from the reference.\n\n");
    printf("%-7s %-10s %-10s %-6s %7s %9s %9s\n", "type", "op", "quality", "kernel", "threads",
           "GB/s", "x memcpy");

    for (int ti = 0; ti < NTYPES; ti++) {
        const uint32_t type = TYPES[ti];
        const char *tname = qfmt_type_get_traits(type)->name;
        bool have_ref_bytes = false; /* q holds the reference bytes of the whole buffer */
        for (int op = OP_QUANT; op <= OP_DEQUANT; op++) {
            if (op == OP_QUANT_BEST && !has_best(type)) continue;
            const bool slow = op == OP_QUANT_BEST || op == OP_QUANT_IMP ||
                              (op == OP_QUANT && ref_searches(type));
            const bool quantize = op != OP_DEQUANT;
            for (int k = 0; k < 2; k++) { /* scalar, avx2 */
                if (k == 1 && (!avx2 || slow || !has_avx2(type, quantize))) continue;
                for (int t = 0; t < 2; t++) {
                    if (t == 1 && cpus == 1) continue;
                    qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
                    o.threads = thr[t];
                    o.quality = op == OP_QUANT_BEST ? QFMT_QUALITY_BEST : QFMT_QUALITY_REFERENCE;
                    o.kernel = k ? QFMT_KERNEL_AVX2 : QFMT_KERNEL_SCALAR;
                    o.importance = op == OP_QUANT_IMP ? imp : NULL;
                    const size_t nn = slow ? n_best : n;
                    if (op == OP_DEQUANT && !have_ref_bytes) {
                        /* a dequantize reads the reference bytes of the whole buffer */
                        qfmt_quant_opts r = QFMT_QUANT_OPTS_INIT;
                        r.threads = cpus;
                        bench_kernel(true, type, x, y, q, n, &r, 1);
                        have_ref_bytes = true;
                    }
                    const int r = op == OP_QUANT_BEST || op == OP_QUANT_IMP ? 1 + reps / 3 : reps;
                    double gbs = bench_kernel(quantize, type, x, y, q, nn, &o, r);
                    if (quantize) have_ref_bytes = op == OP_QUANT && nn == n;
                    double ref = slow ? mc_best[t] : mc[t];
                    static const char *const qual[] = {"reference", "best", "importance", "-"};
                    printf("%-7s %-10s %-10s %-6s %7u %9.3f %9.3g\n", tname,
                           quantize ? "quantize" : "dequantize", qual[op], k ? "avx2" : "scalar",
                           thr[t], gbs, gbs / ref);
                    fflush(stdout);
                }
            }
        }
    }
    free(x);
    free(y);
    free(q);
    free(imp);
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
    const uint64_t n = rows * cols, qb = qbytes(type, n);
    qfmt_quant_opts o = QFMT_QUANT_OPTS_INIT;
    o.threads = cpus;
    o.quality = qual;
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

    acc a[MAX_TYPES];
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
        uint8_t *q = xmalloc(max_qbytes(n));
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
        bool used = false;
        for (int ti = 0; ti < NTYPES; ti++) {
            const uint32_t be = qfmt_type_get_traits(TYPES[ti])->block_elems;
            if (cols % be != 0) {
                fprintf(stderr, "bench_quant: %s: %s rows of %" PRIu64 " values, skipped for %s\n",
                        model, t.name, cols, qfmt_type_get_traits(TYPES[ti])->name);
                continue;
            }
            double se = 0;
            add_error(TYPES[ti], QFMT_QUALITY_REFERENCE, x, rows, cols, cpus, tmp, q, &se);
            a[ti].se_ref += se;
            if (has_best(TYPES[ti]))
                add_error(TYPES[ti], QFMT_QUALITY_BEST, x, rows, cols, cpus, tmp, q, &a[ti].se_best);
            else
                a[ti].se_best += se; /* BEST is the reference */
            a[ti].count += n;
            used = true;
        }
        if (used) {
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
        if (a[ti].count == 0) {
            printf("  %-6s no tensor with rows of whole blocks\n", tname);
            continue;
        }
        double ref = sqrt(a[ti].se_ref / (double)a[ti].count);
        double best = sqrt(a[ti].se_best / (double)a[ti].count);
        char key[64], expected[64] = "-", diff[64] = "-";
        snprintf(key, sizeof key, "rmse_%s", tname);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(exp, key);
        if (cJSON_IsNumber(ev)) {
            snprintf(expected, sizeof expected, "%.9g", ev->valuedouble);
            snprintf(diff, sizeof diff, "%+.2e", (ref - ev->valuedouble) / ev->valuedouble);
        }
        printf("  %-6s reference %.9g  best %.9g  improvement %5.1f%%%s  expected.json %s (ref rel. diff %s)\n",
               tname, ref, best, 100.0 * (ref - best) / ref, has_best(TYPES[ti]) ? "" : " (= ref)",
               expected, diff);
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
    fprintf(f,
            "usage: bench_quant [--mib N] [--best-mib N] [--reps N] [--types LIST] [--fixtures DIR]\n"
            "  --mib N        f32 buffer of the throughput runs, MiB (default 64)\n"
            "  --best-mib N   its first N MiB for the slow searches: BEST quality, importance, and\n"
            "                 the reference quantize of the K types and iq4 (default 4)\n"
            "  --reps N       best of N runs (default 5; the slow searches 1 + N/3)\n"
            "  --types LIST   comma-separated block types (default: all 14: q8_0,q4_0,q4_1,q8_z,\n"
            "                 q4_z,q5_0,q5_1,q2_k,q3_k,q4_k,q5_k,q6_k,iq4_nl,iq4_xs)\n"
            "  --fixtures DIR also the weight RMSE of each type on the model fixtures in DIR\n"
            "                 (e.g. tests/data/fixtures)\n"
            "Prints GB/s of f32 quantized / dequantized per type, 1 thread and all online CPUs,\n"
            "scalar and AVX2 kernels, beside memcpy measured in the same run (ratio).\n");
}

/* --types: names into TYPES; exits on an unknown or non-block type. */
static void parse_types(const char *list)
{
    NTYPES = 0;
    char buf[512];
    if (strlen(list) >= sizeof buf) {
        fprintf(stderr, "bench_quant: --types list too long\n");
        exit(2);
    }
    strcpy(buf, list);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint32_t t;
        if (qfmt_type_from_name(tok, &t) != QFMT_OK || !qfmt_quant_kernels_get(t)) {
            fprintf(stderr, "bench_quant: --types: '%s' is not a block type\n", tok);
            exit(2);
        }
        if (NTYPES == MAX_TYPES) break;
        TYPES[NTYPES++] = t;
    }
    if (NTYPES == 0) {
        fprintf(stderr, "bench_quant: --types needs at least one type\n");
        exit(2);
    }
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
    for (int i = 0; i < MAX_TYPES; i++) TYPES[i] = ALL_TYPES[i];
    NTYPES = MAX_TYPES;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mib") == 0) mib = parse_pos("--mib", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--best-mib") == 0) best_mib = parse_pos("--best-mib", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--reps") == 0) reps = (int)parse_pos("--reps", i + 1 < argc ? argv[++i] : NULL);
        else if (strcmp(argv[i], "--fixtures") == 0 && i + 1 < argc) fixtures = argv[++i];
        else if (strcmp(argv[i], "--types") == 0 && i + 1 < argc) parse_types(argv[++i]);
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
