/* Choosing the next token from logits: greedy, or top-k sampling at a temperature with a
 * seeded generator (splitmix64), so that a seed gives the same text on every machine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt_model.h"

struct qfmt_sampler {
    size_t vocab;
    double temperature;
    uint64_t top_k, rng;
    qfmt_candidate *c; /* vocab slots */
};

qfmt_status qfmt_sampler_new(qfmt_sampler **out, size_t vocab, double temperature, uint64_t top_k, uint64_t seed,
                             qfmt_error *err)
{
    *out = NULL;
    const char *why = NULL;
    qfmt_status code = QFMT_E_ARG;
    if (vocab == 0 || vocab > ((size_t)1 << 30)) why = "vocabulary size must be 1..2^30";
    else if (!(temperature >= 0) || temperature > 100) why = "temperature must be within 0..100";
    else if (top_k == 0) why = "top_k must be at least 1";
    qfmt_sampler *s = why ? NULL : calloc(1, sizeof *s);
    if (s && !(s->c = malloc(vocab * sizeof *s->c))) {
        free(s);
        s = NULL;
    }
    if (!s) {
        if (!why) why = "out of memory", code = QFMT_E_NOMEM;
        if (err) {
            memset(err, 0, sizeof *err);
            err->code = code;
            err->offset = QFMT_NO_OFFSET;
            strcpy(err->message, why);
        }
        return code;
    }
    s->vocab = vocab, s->temperature = temperature, s->top_k = top_k, s->rng = seed;
    *out = s;
    return QFMT_OK;
}

void qfmt_sampler_free(qfmt_sampler *s)
{
    if (!s) return;
    free(s->c);
    free(s);
}

static uint64_t next_random(uint64_t *s) /* splitmix64 */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int by_p(const void *a, const void *b)
{
    const qfmt_candidate *x = a, *y = b;
    return x->p < y->p ? 1 : x->p > y->p ? -1 : (x->id > y->id) - (x->id < y->id);
}

size_t qfmt_sampler_top(qfmt_sampler *s, const float *logits, size_t k, double temperature,
                        const qfmt_candidate **out)
{
    size_t V = s->vocab;
    qfmt_candidate *c = s->c;
    float mx = -INFINITY;
    for (size_t v = 0; v < V; v++) mx = fmaxf(mx, logits[v]);
    double sum = 0;
    for (size_t v = 0; v < V; v++) {
        c[v].id = (int32_t)v;
        c[v].p = expf((float)((logits[v] - mx) / temperature));
        sum += c[v].p;
    }
    for (size_t v = 0; v < V; v++) c[v].p = (float)(c[v].p / sum);
    qsort(c, V, sizeof *c, by_p);
    *out = c;
    return k < V ? k : V;
}

int32_t qfmt_sampler_pick(qfmt_sampler *s, const float *logits)
{
    size_t V = s->vocab;
    if (s->temperature == 0) {
        size_t best = 0;
        for (size_t v = 1; v < V; v++)
            if (logits[v] > logits[best]) best = v;
        return (int32_t)best;
    }
    const qfmt_candidate *c;
    size_t k = qfmt_sampler_top(s, logits, (size_t)(s->top_k < V ? s->top_k : V), s->temperature, &c);
    double total = 0;
    for (size_t i = 0; i < k; i++) total += c[i].p;
    double r = (double)(next_random(&s->rng) >> 11) / 9007199254740992.0 * total;
    for (size_t i = 0; i < k; i++) {
        r -= c[i].p;
        if (r <= 0) return c[i].id;
    }
    return c[k - 1].id;
}
