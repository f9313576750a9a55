/* test_sample.c - token choice (libqfmt_model/src/sample.c) and the perplexity term
 * (perplexity.c): greedy is the argmax, sampling follows its seed, top-k is sorted and sums to
 * at most 1, bad arguments are refused, and qfmt_nll is -log softmax. */
#include "test_helpers.h"

#include <math.h>

#include "qfmt_model.h"

Test(sample, greedy_is_argmax_first_on_ties) {
    float logits[5] = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f};
    qfmt_sampler *s = NULL;
    qfmt_error e;
    TH_OKE(qfmt_sampler_new(&s, 5, 0.0, 40, 1, &e), e);
    cr_assert_eq(qfmt_sampler_pick(s, logits), 1);
    qfmt_sampler_free(s);
}

Test(sample, same_seed_same_choices_and_top_k_bounds_them) {
    float logits[64];
    for (int i = 0; i < 64; i++) logits[i] = (float)((i * 37) % 64) / 16.0f;
    qfmt_sampler *a = NULL, *b = NULL, *c = NULL;
    qfmt_error e;
    TH_OKE(qfmt_sampler_new(&a, 64, 0.8, 3, 42, &e), e);
    TH_OKE(qfmt_sampler_new(&b, 64, 0.8, 3, 42, &e), e);
    TH_OKE(qfmt_sampler_new(&c, 64, 0.8, 64, 43, &e), e);
    const qfmt_candidate *top;
    size_t k = qfmt_sampler_top(a, logits, 3, 0.8, &top);
    cr_assert_eq(k, 3);
    int32_t allowed[3] = {top[0].id, top[1].id, top[2].id};
    cr_assert(top[0].p >= top[1].p && top[1].p >= top[2].p);
    int differ = 0;
    for (int i = 0; i < 200; i++) {
        int32_t x = qfmt_sampler_pick(a, logits), y = qfmt_sampler_pick(b, logits), z = qfmt_sampler_pick(c, logits);
        cr_assert_eq(x, y);
        cr_assert(x == allowed[0] || x == allowed[1] || x == allowed[2], "token %d outside the top 3", x);
        differ += x != z;
    }
    cr_assert_gt(differ, 0, "another seed never chose differently");
    qfmt_sampler_free(a), qfmt_sampler_free(b), qfmt_sampler_free(c);
}

Test(sample, top_is_a_distribution) {
    float logits[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    qfmt_sampler *s = NULL;
    qfmt_error e;
    TH_OKE(qfmt_sampler_new(&s, 10, 1.0, 10, 0, &e), e);
    const qfmt_candidate *top;
    cr_assert_eq(qfmt_sampler_top(s, logits, 100, 1.0, &top), 10);
    double sum = 0;
    for (int i = 0; i < 10; i++) sum += top[i].p;
    cr_assert_float_eq(sum, 1.0, 1e-5);
    cr_assert_eq(top[0].id, 9);
    cr_assert_float_eq(top[0].p, 1.0 / (1.0 + exp(-1.0) * (1 - exp(-9.0)) / (1 - exp(-1.0))), 1e-5);
    qfmt_sampler_free(s);
}

Test(sample, refuses_bad_arguments) {
    qfmt_sampler *s = (qfmt_sampler *)1;
    qfmt_error e;
    cr_assert_eq(qfmt_sampler_new(&s, 0, 0, 1, 0, &e), QFMT_E_ARG);
    cr_assert_null(s);
    cr_assert_eq(qfmt_sampler_new(&s, 10, -1, 1, 0, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_sampler_new(&s, 10, NAN, 1, 0, &e), QFMT_E_ARG);
    cr_assert_eq(qfmt_sampler_new(&s, 10, 1, 0, 0, &e), QFMT_E_ARG);
    cr_assert(strstr(e.message, "top_k") != NULL);
    qfmt_sampler_free(NULL);
}

Test(perplexity, nll_is_minus_log_softmax) {
    float uniform[8] = {0};
    cr_assert_float_eq(qfmt_nll(uniform, 8, 3), log(8.0), 1e-12);
    float l[3] = {1000.0f, 0.0f, 1000.0f}; /* no overflow for large logits */
    cr_assert_float_eq(qfmt_nll(l, 3, 0), log(2.0), 1e-9);
    cr_assert_float_eq(qfmt_nll(l, 3, 1), 1000.0 + log(2.0), 1e-6);
}
