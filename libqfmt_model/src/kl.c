/* How far a model's token distributions are from a reference model's (qfmt eval --kl-base),
 * as llama.cpp's llama-perplexity --kl-divergence measures it: per scored position
 * KL(P_ref || P) over the whole vocabulary, whether the two argmaxes agree, and each model's
 * negative log-likelihood of the target; over positions the mean, nearest-rank quantiles and
 * both perplexities. Everything in double, from log-softmax rows shifted by their maximum. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"

/* One logits row: its maximum (as qfmt_nll takes it, so nll values agree with it to the bit),
 * log sum exp(x - max) in double, and its first argmax. */
typedef struct {
    float mx;
    double lse;
    size_t top;
} row_norm;

static row_norm normalize(const float *x, size_t V)
{
    row_norm r = {-INFINITY, 0, 0};
    for (size_t v = 0; v < V; v++) {
        r.mx = fmaxf(r.mx, x[v]);
        if (x[v] > x[r.top]) r.top = v; /* strict: the first index wins ties */
    }
    double sum = 0;
    for (size_t v = 0; v < V; v++) sum += exp((double)x[v] - r.mx);
    r.lse = log(sum);
    return r;
}

/* KL(P_ref || P) for rows normalized as nr and nm. */
static double kl_rows(const float *ref, const row_norm *nr, const float *x, const row_norm *nm, size_t V)
{
    double kl = 0;
    for (size_t v = 0; v < V; v++) {
        double lr = ((double)ref[v] - nr->mx) - nr->lse;
        double pr = exp(lr);
        if (pr == 0 && !isnan(lr)) continue; /* p log p -> 0: a -inf (or underflowing) reference logit */
        double lm = ((double)x[v] - nm->mx) - nm->lse;
        kl += pr * (lr - lm);
    }
    /* Rounding can leave -1e-17 where the rows agree; KL is never negative. (NaN stays NaN.) */
    return kl < 0 ? 0 : kl;
}

double qfmt_kl_divergence(const float *ref_logits, const float *logits, size_t vocab, bool *same_top)
{
    row_norm nr = normalize(ref_logits, vocab), nm = normalize(logits, vocab);
    if (same_top) *same_top = nr.top == nm.top;
    return kl_rows(ref_logits, &nr, logits, &nm, vocab);
}

struct qfmt_kl_acc {
    size_t vocab;
    double *kl; /* one per position, in the order added (sorted by qfmt_kl_acc_stats) */
    size_t n, cap;
    uint64_t same_top;
    double kl_sum, nll_sum, ref_nll_sum;
};

static qfmt_status fail(qfmt_error *err, qfmt_status code, const char *why)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        err->offset = QFMT_NO_OFFSET;
        strcpy(err->message, why);
    }
    return code;
}

qfmt_status qfmt_kl_acc_new(qfmt_kl_acc **out, size_t vocab, qfmt_error *err)
{
    *out = NULL;
    if (vocab == 0 || vocab > ((size_t)1 << 30)) return fail(err, QFMT_E_ARG, "vocabulary size must be 1..2^30");
    qfmt_kl_acc *a = calloc(1, sizeof *a);
    if (!a) return fail(err, QFMT_E_NOMEM, "out of memory");
    a->vocab = vocab;
    *out = a;
    return QFMT_OK;
}

void qfmt_kl_acc_free(qfmt_kl_acc *a)
{
    if (!a) return;
    free(a->kl);
    free(a);
}

qfmt_status qfmt_kl_acc_add(qfmt_kl_acc *a, const float *ref_logits, const float *logits, int32_t target,
                            qfmt_error *err)
{
    size_t V = a->vocab;
    if (target < 0 || (size_t)target >= V) return fail(err, QFMT_E_ARG, "target outside the vocabulary");
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        double *k = cap > SIZE_MAX / sizeof *k ? NULL : realloc(a->kl, cap * sizeof *k);
        if (!k) return fail(err, QFMT_E_NOMEM, "out of memory");
        a->kl = k, a->cap = cap;
    }
    row_norm nr = normalize(ref_logits, V), nm = normalize(logits, V);
    double kl = kl_rows(ref_logits, &nr, logits, &nm, V);
    a->kl[a->n++] = kl;
    a->kl_sum += kl;
    a->same_top += nr.top == nm.top;
    /* qfmt_nll's expression, so that perplexity here is eval's to the bit */
    a->nll_sum += nm.lse - ((double)logits[target] - nm.mx);
    a->ref_nll_sum += nr.lse - ((double)ref_logits[target] - nr.mx);
    return QFMT_OK;
}

static int by_value(const void *pa, const void *pb) /* ascending, NaN last */
{
    double x = *(const double *)pa, y = *(const double *)pb;
    if (isnan(x) || isnan(y)) return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* Nearest rank: the ceil(q n)-th smallest of n sorted values (1-based), at least the first. */
static double nearest_rank(const double *sorted, size_t n, double q)
{
    double r = ceil(q * (double)n);
    size_t k = r < 1 ? 1 : (size_t)r;
    return sorted[(k > n ? n : k) - 1];
}

void qfmt_kl_acc_stats(qfmt_kl_acc *a, qfmt_kl_stats *out)
{
    memset(out, 0, sizeof *out);
    out->positions = a->n;
    if (a->n == 0) {
        out->mean = out->p99 = out->median = out->max = out->same_top = NAN;
        out->perplexity = out->ref_perplexity = out->ppl_ratio = NAN;
        return;
    }
    double n = (double)a->n;
    qsort(a->kl, a->n, sizeof *a->kl, by_value);
    out->mean = a->kl_sum / n;
    out->p99 = nearest_rank(a->kl, a->n, 0.99);
    out->median = nearest_rank(a->kl, a->n, 0.5);
    out->max = a->kl[a->n - 1];
    out->same_top = (double)a->same_top / n;
    out->perplexity = exp(a->nll_sum / n);
    out->ref_perplexity = exp(a->ref_nll_sum / n);
    /* exp of the difference of the means: no overflow where both perplexities are huge */
    out->ppl_ratio = exp((a->nll_sum - a->ref_nll_sum) / n);
}
