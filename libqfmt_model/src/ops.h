/*
 * ops.h - the numeric kernels of the forward pass: matrix products against weights of any
 * qfmt type, norms, activations, a thread pool.
 */
#ifndef QFMT_RUNTIME_OPS_H
#define QFMT_RUNTIME_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight matrix [rows, cols] as stored (rows are outputs, cols the inner dimension). */
typedef struct {
    const uint8_t *data;
    uint32_t type;
    uint64_t rows, cols;
    size_t row_bytes;
    const uint8_t *pack; /* NULL, or the rows repacked for decoding (qfmt__gemm_pack), same values */
} qmat;

/* A fixed pool of worker threads running one parallel-for at a time. */
typedef struct qfmt_pool qfmt_pool;
qfmt_pool *qfmt_pool_new(unsigned threads);
void qfmt_pool_free(qfmt_pool *p);
unsigned qfmt_pool_size(const qfmt_pool *p);
/* Calls fn(ctx, i) for i in [0, n) split into contiguous ranges, one per thread. */
void qfmt_pool_for(qfmt_pool *p, size_t n, void (*fn)(void *ctx, size_t begin, size_t end), void *ctx);

/* A block type the fast path has integer kernels for (q8_0, q5_0, q5_1, q4_0, q4_1, iq4_nl,
 * the K types q2_k .. q6_k, iq4_xs and the z types); the others run on the fast path as on the
 * exact one, row by row decoded to fp32. */
bool qfmt__is_block_type(uint32_t type);

/* Decodes row r of w into out (cols floats). */
void qfmt__qmat_row(const qmat *w, uint64_t r, float *out);

/* y[t][j] = sum_k x[t][k] * w[j][k] (+ bias[j]) for t < T: x is T x cols, y is T x rows.
 * exact: fp32 against each decoded row; else activations quantized to 8-bit blocks and integer
 * dot products where the weight type allows (qfmt__is_block_type), fp32 otherwise. */
void qfmt__qmat_mul(qfmt_pool *p, const qmat *w, const float *bias, const float *x, size_t T, float *y,
              bool exact);

float qfmt_dot(const float *a, const float *b, size_t n);
void qfmt__layer_norm(float *x, size_t n, const float *w, const float *b, float eps);
void qfmt__rms_norm(float *x, size_t n, const float *w, float eps);
float qfmt__gelu_tanh(float x);
float qfmt__gelu_erf(float x);
float qfmt__silu(float x);
/* Softmax over x[0..n) in place. */
void qfmt__softmax(float *x, size_t n);

#endif
