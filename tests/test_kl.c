/* test_kl.c - the KL divergence of qfmt eval --kl-base (libqfmt_model/src/kl.c):
 * qfmt_kl_divergence against distributions worked out by hand (in its argument order,
 * KL(P_ref || P)), identical rows, shift invariance, logits that would overflow a naive
 * softmax, -inf and NaN logits; and the accumulator: mean, nearest-rank quantiles, the
 * same-top share, both perplexities (qfmt_nll's, to the bit), refusals. */
#include "test_helpers.h"

#include <math.h>

#include "qfmt_model.h"

Test(kl, identical_rows_give_zero_and_the_same_top) {
    float l[1000];
    for (int i = 0; i < 1000; i++) l[i] = (float)sin(i * 0.37) * 7.5f - (float)(i % 13);
    bool same = false;
    cr_assert_eq(qfmt_kl_divergence(l, l, 1000, &same), 0.0);
    cr_assert(same);
    float u[4] = {2, 2, 2, 2}; /* uniform: a tie everywhere, first index on both sides */
    same = false;
    cr_assert_eq(qfmt_kl_divergence(u, u, 4, &same), 0.0);
    cr_assert(same);
    cr_assert_eq(qfmt_kl_divergence(u, u, 4, NULL), 0.0);
}

Test(kl, two_tokens_by_hand) {
    /* P_ref = (1/2, 1/2), P = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3) */
    float ref[2] = {0, 0}, m[2] = {(float)log(3.0), 0};
    bool same = false;
    cr_assert_float_eq(qfmt_kl_divergence(ref, m, 2, &same), 0.5 * log(4.0 / 3.0), 1e-7);
    cr_assert(same, "the reference's tie goes to index 0, as does the model's top");
    /* the other direction: 3/4 ln(3/2) + 1/4 ln(1/2) */
    cr_assert_float_eq(qfmt_kl_divergence(m, ref, 2, &same), 0.75 * log(1.5) + 0.25 * log(0.5), 1e-7);
    /* one vocabulary entry: always 0 */
    cr_assert_eq(qfmt_kl_divergence(ref, m, 1, &same), 0.0);
    cr_assert(same);
}

Test(kl, three_tokens_by_hand_and_asymmetric) {
    const double p[3] = {0.6, 0.3, 0.1}, q[3] = {0.1, 0.1, 0.8};
    float lp[3], lq[3];
    for (int i = 0; i < 3; i++) lp[i] = (float)log(p[i]) + 5.0f, lq[i] = (float)log(q[i]) - 2.0f;
    double pq = 0.6 * log(6.0) + 0.3 * log(3.0) + 0.1 * log(1.0 / 8); /* 1.1967 */
    double qp = 0.1 * log(1.0 / 6) + 0.1 * log(1.0 / 3) + 0.8 * log(8.0); /* 1.3745 */
    bool same = true;
    cr_assert_float_eq(qfmt_kl_divergence(lp, lq, 3, &same), pq, 1e-6);
    cr_assert(!same, "tops 0 and 2");
    cr_assert_float_eq(qfmt_kl_divergence(lq, lp, 3, &same), qp, 1e-6);
    cr_assert(!same);
    cr_assert(fabs(pq - qp) > 0.1, "the example must tell the directions apart");
}

Test(kl, shift_invariant) {
    float a[64], b[64], as[64], bs[64];
    for (int i = 0; i < 64; i++) { /* eighths: shifted by 1024 exactly in float */
        a[i] = (float)((i * 29) % 64) / 8.0f;
        b[i] = (float)((i * 37) % 64) / 8.0f;
        as[i] = a[i] + 1024.0f;
        bs[i] = b[i] - 512.0f;
    }
    bool s1, s2;
    double k = qfmt_kl_divergence(a, b, 64, &s1);
    cr_assert_gt(k, 0.1);
    cr_assert_eq(qfmt_kl_divergence(as, bs, 64, &s2), k);
    cr_assert_eq(s1, s2);
}

Test(kl, large_logits_do_not_overflow) {
    /* exp(1e6) overflows any float type: only the shifted form gets 1/2 ln(1/2 / q0) + ... */
    float ref[2] = {1e6f, 1e6f}, m[2] = {1e6f + 1.0f, 1e6f};
    double q0 = exp(1.0) / (1 + exp(1.0)), q1 = 1 / (1 + exp(1.0));
    double k = qfmt_kl_divergence(ref, m, 2, NULL);
    cr_assert_float_eq(k, 0.5 * log(0.5 / q0) + 0.5 * log(0.5 / q1), 1e-12);
    /* near FLT_MAX: P_ref = (1, 0), P = (0, 1) within double: KL = 3e38 nats, finite */
    float r2[2] = {3e38f, 0}, m2[2] = {0, 3e38f};
    bool same = true;
    k = qfmt_kl_divergence(r2, m2, 2, &same);
    cr_assert(isfinite(k));
    cr_assert_float_eq(k, (double)3e38f, 1e30);
    cr_assert(!same);
    float r3[3] = {-3e38f, 3e38f, -3e38f}; /* spread over the whole float range */
    cr_assert_eq(qfmt_kl_divergence(r3, r3, 3, NULL), 0.0);
}

Test(kl, minus_infinity_and_nan) {
    float ninf = -INFINITY;
    float ref[3] = {ninf, 0, 0}, flat[3] = {0, 0, 0}, m[3] = {ninf, 0, 0};
    bool same;
    /* a -inf reference logit: p = 0 contributes nothing; P_ref = (0, 1/2, 1/2), P = 1/3 each */
    cr_assert_float_eq(qfmt_kl_divergence(ref, flat, 3, &same), log(1.5), 1e-12);
    cr_assert(!same, "tops 1 and 0");
    /* -inf in both where p_ref = 0: exactly 0 */
    cr_assert_eq(qfmt_kl_divergence(ref, m, 3, &same), 0.0);
    cr_assert(same);
    /* the model rules out a token the reference gives 1/3: infinite */
    double k = qfmt_kl_divergence(flat, m, 3, NULL);
    cr_assert(isinf(k) && k > 0);
    /* only -inf, or a NaN, in either row: NaN */
    float all[3] = {ninf, ninf, ninf}, nan3[3] = {0, NAN, 0};
    cr_assert(isnan(qfmt_kl_divergence(all, flat, 3, NULL)));
    cr_assert(isnan(qfmt_kl_divergence(flat, all, 3, NULL)));
    cr_assert(isnan(qfmt_kl_divergence(nan3, flat, 3, NULL)));
    cr_assert(isnan(qfmt_kl_divergence(flat, nan3, 3, NULL)));
}

/* Position i of a two-token vocabulary: reference (0, 0), model (a_i, 0). */
static float shift_of(int i) { return (float)(i - 20) / 8.0f; }

static void accumulate(qfmt_kl_acc *acc, int n, double *sorted, double *nll, double *ref_nll, int *same)
{
    float ref[2] = {0, 0};
    *nll = *ref_nll = 0;
    *same = 0;
    for (int j = 0; j < n; j++) {
        int i = (j * 37) % n; /* shuffled: the quantiles must sort */
        float m[2] = {shift_of(i), 0};
        int32_t target = (int32_t)(i % 2);
        bool s;
        sorted[j] = qfmt_kl_divergence(ref, m, 2, &s);
        *same += s;
        *nll += qfmt_nll(m, 2, target);
        *ref_nll += qfmt_nll(ref, 2, target);
        qfmt_error e;
        TH_OKE(qfmt_kl_acc_add(acc, ref, m, target, &e), e);
    }
    for (int a = 1; a < n; a++) /* insertion sort, the test's own */
        for (int b = a; b > 0 && sorted[b - 1] > sorted[b]; b--) {
            double t = sorted[b];
            sorted[b] = sorted[b - 1], sorted[b - 1] = t;
        }
}

Test(kl, accumulator_mean_quantiles_same_top_perplexities) {
    const int n = 200; /* 37 is prime to 200: every i once */
    double sorted[200], nll, ref_nll;
    int same;
    qfmt_kl_acc *acc = NULL;
    qfmt_error e;
    TH_OKE(qfmt_kl_acc_new(&acc, 2, &e), e);
    accumulate(acc, n, sorted, &nll, &ref_nll, &same);
    qfmt_kl_stats st;
    qfmt_kl_acc_stats(acc, &st);
    cr_assert_eq(st.positions, (uint64_t)n);
    double sum = 0;
    for (int j = 0; j < n; j++) sum += sorted[j];
    cr_assert_float_eq(st.mean, sum / n, 1e-12 * st.mean); /* summed in another order */
    cr_assert_eq(st.p99, sorted[198 - 1], "nearest rank: ceil(0.99 * 200) = 198th smallest");
    cr_assert_eq(st.median, sorted[100 - 1]);
    cr_assert_eq(st.max, sorted[n - 1]);
    cr_assert_eq(same, 180, "a_i < 0 (i < 20) moves the model's top to token 1");
    cr_assert_float_eq(st.same_top, 0.9, 1e-15);
    cr_assert_eq(st.perplexity, exp(nll / n), "qfmt_nll's perplexity to the bit");
    cr_assert_eq(st.ref_perplexity, exp(ref_nll / n));
    cr_assert_float_eq(st.ref_perplexity, 2.0, 1e-12);
    cr_assert_float_eq(st.ppl_ratio, st.perplexity / st.ref_perplexity, 1e-12 * st.ppl_ratio);
    /* more positions after stats: one more identical row */
    float z[2] = {0, 0};
    TH_OKE(qfmt_kl_acc_add(acc, z, z, 0, &e), e);
    qfmt_kl_acc_stats(acc, &st);
    cr_assert_eq(st.positions, (uint64_t)n + 1);
    cr_assert_float_eq(st.mean, sum / (n + 1), 1e-12 * st.mean);
    cr_assert_eq(st.p99, sorted[199 - 2], "ceil(0.99 * 201) = 199th smallest of the 201: the new 0 comes first");
    qfmt_kl_acc_free(acc);
}

Test(kl, accumulator_small_counts_and_identical_models) {
    qfmt_kl_acc *acc = NULL;
    qfmt_error e;
    TH_OKE(qfmt_kl_acc_new(&acc, 5, &e), e);
    qfmt_kl_stats st;
    qfmt_kl_acc_stats(acc, &st);
    cr_assert_eq(st.positions, 0);
    cr_assert(isnan(st.mean) && isnan(st.p99) && isnan(st.same_top) && isnan(st.ppl_ratio));
    float r[5] = {1, 2, 3, 4, 5}, m[5] = {5, 4, 3, 2, 1};
    TH_OKE(qfmt_kl_acc_add(acc, r, m, 2, &e), e);
    qfmt_kl_acc_stats(acc, &st);
    double k = qfmt_kl_divergence(r, m, 5, NULL);
    cr_assert_eq(st.positions, 1);
    cr_assert_eq(st.mean, k);
    cr_assert_eq(st.p99, k, "one value: its own quantile");
    cr_assert_eq(st.median, k);
    cr_assert_eq(st.same_top, 0.0);
    cr_assert_eq(st.perplexity, st.ref_perplexity, "target 2 has the same logit in both, the same normalizer");
    qfmt_kl_acc_free(acc);

    TH_OKE(qfmt_kl_acc_new(&acc, 5, &e), e); /* a model against itself */
    for (int i = 0; i < 50; i++) {
        float x[5] = {(float)i, 1, -2, 0.5f, (float)(i % 7)};
        TH_OKE(qfmt_kl_acc_add(acc, x, x, i % 5, &e), e);
    }
    qfmt_kl_acc_stats(acc, &st);
    cr_assert_eq(st.mean, 0.0);
    cr_assert_eq(st.p99, 0.0);
    cr_assert_eq(st.max, 0.0);
    cr_assert_eq(st.same_top, 1.0);
    cr_assert_eq(st.ppl_ratio, 1.0);
    cr_assert_eq(st.perplexity, st.ref_perplexity);
    for (size_t i = 0; i < sizeof st.reserved / sizeof st.reserved[0]; i++) cr_assert_eq(st.reserved[i], 0);
    qfmt_kl_acc_free(acc);
}

Test(kl, accumulator_refusals) {
    qfmt_kl_acc *acc = (qfmt_kl_acc *)1;
    qfmt_error e;
    cr_assert_eq(qfmt_kl_acc_new(&acc, 0, &e), QFMT_E_ARG);
    cr_assert_null(acc);
    cr_assert_eq(e.code, QFMT_E_ARG);
    cr_assert(strstr(e.message, "vocabulary"));
    cr_assert_eq(qfmt_kl_acc_new(&acc, ((size_t)1 << 30) + 1, NULL), QFMT_E_ARG);
    TH_OKE(qfmt_kl_acc_new(&acc, 3, &e), e);
    float x[3] = {0, 1, 2};
    cr_assert_eq(qfmt_kl_acc_add(acc, x, x, 3, &e), QFMT_E_ARG);
    cr_assert(strstr(e.message, "target"));
    cr_assert_eq(qfmt_kl_acc_add(acc, x, x, -1, NULL), QFMT_E_ARG);
    qfmt_kl_stats st;
    qfmt_kl_acc_stats(acc, &st);
    cr_assert_eq(st.positions, 0, "a refused position is not added");
    qfmt_kl_acc_free(acc);
    qfmt_kl_acc_free(NULL);
}

Test(kl, nan_positions_sort_last) {
    qfmt_kl_acc *acc = NULL;
    qfmt_error e;
    TH_OKE(qfmt_kl_acc_new(&acc, 2, &e), e);
    float a[2] = {0, 0}, b[2] = {1, 0}, n[2] = {NAN, 0};
    TH_OKE(qfmt_kl_acc_add(acc, a, n, 0, &e), e);
    for (int i = 0; i < 9; i++) TH_OKE(qfmt_kl_acc_add(acc, a, i % 2 ? a : b, 0, &e), e);
    qfmt_kl_stats st;
    qfmt_kl_acc_stats(acc, &st);
    cr_assert(isnan(st.mean) && isnan(st.max));
    cr_assert_eq(st.median, qfmt_kl_divergence(a, b, 2, NULL), "5th smallest of four 0s, five equal and a NaN");
    cr_assert(isnan(st.p99), "ceil(9.9) = 10th: the NaN");
    qfmt_kl_acc_free(acc);
}
