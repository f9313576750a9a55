/* qfmt_convert_floats: F32 <-> F16 <-> BF16 rows, at the fastest level dispatch.c offers (the
 * same bits at every level: the references are types/floats.c). */
#include <string.h>

#include "internal/dispatch.h"

static int is_float16_or_32(uint32_t t)
{
    return t == QFMT_TYPE_F32 || t == QFMT_TYPE_F16 || t == QFMT_TYPE_BF16;
}

qfmt_status qfmt_convert_floats(uint32_t src_type, const void *src, uint32_t dst_type, void *dst,
                                size_t n)
{
    if (!is_float16_or_32(src_type) || !is_float16_or_32(dst_type)) return QFMT_E_UNSUPPORTED;
    if (n && (!src || !dst)) return QFMT_E_ARG;
    if (src_type == dst_type) {
        if (src != dst) memmove(dst, src, n * (src_type == QFMT_TYPE_F32 ? 4 : 2));
        return QFMT_OK;
    }
    /* Below one vector the scalar loop is as fast; the bits are the same either way. */
    const qfmt__float_kernels *fk =
        qfmt__float_kernels_get(n >= 8 ? qfmt__kernel_resolve(QFMT_KERNEL_AUTO) : QFMT_KERNEL_SCALAR);
    qfmt__to_f32_fn to = src_type == QFMT_TYPE_BF16 ? fk->bf16_to_f32 : fk->f16_to_f32;
    qfmt__from_f32_fn from = dst_type == QFMT_TYPE_BF16 ? fk->f32_to_bf16 : fk->f32_to_f16;
    /* The kernels read and write through memcpy or unaligned loads: any alignment will do. */
    if (dst_type == QFMT_TYPE_F32) {
        to(src, (float *)dst, n);
        return QFMT_OK;
    }
    if (src_type == QFMT_TYPE_F32) {
        from((const float *)src, dst, n);
        return QFMT_OK;
    }
    /* F16 <-> BF16: through F32 a chunk at a time, the two steps of the definition */
    const unsigned char *s = src;
    unsigned char *d = dst;
    float buf[1024];
    for (size_t at = 0; at < n; at += 1024) {
        size_t k = n - at < 1024 ? n - at : 1024;
        to(s + 2 * at, buf, k);
        from(buf, d + 2 * at, k);
    }
    return QFMT_OK;
}

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "libqfmt hands out tensor bytes in place: it needs a little-endian host");
