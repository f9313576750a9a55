/* The quantity perplexity is made of: a position's negative log-likelihood of its target. */
#include <math.h>

#include "qfmt_model.h"

double qfmt_nll(const float *logits, size_t vocab, int32_t target)
{
    float mx = -INFINITY;
    for (size_t v = 0; v < vocab; v++) mx = fmaxf(mx, logits[v]);
    double sum = 0;
    for (size_t v = 0; v < vocab; v++) sum += exp((double)logits[v] - mx);
    return log(sum) - ((double)logits[target] - mx);
}
