/* The only file that includes zstd.h. Every compressed tensor is one zstd frame (RFC 8878)
 * whose Frame_Content_Size equals the tensor's Raw_Size; decoding never writes past it. */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_customMem, to route zstd's allocations */
#include <zstd.h>
#include <zstd_errors.h>

#include <string.h>

#include "internal/compress.h"

static ZSTD_customMem custom_mem(const qfmt__alloc *al)
{
    ZSTD_customMem m = {al->a.alloc, al->a.free, al->a.ctx};
    return m;
}

qfmt_status qfmt__zstd_check_frame(const void *src, uint64_t src_size, uint64_t raw_size,
                                   const char **why)
{
    if (src_size < 4 || src_size > SIZE_MAX) {
        *why = "zstd frame too short";
        return QFMT_E_CORRUPT;
    }
    const unsigned char *p = src;
    uint32_t magic = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
                     ((uint32_t)p[3] << 24);
    if (magic != ZSTD_MAGICNUMBER) {
        *why = "stored bytes are not a zstd frame";
        return QFMT_E_CORRUPT;
    }
    unsigned long long content = ZSTD_getFrameContentSize(src, (size_t)src_size);
    if (content == ZSTD_CONTENTSIZE_ERROR) {
        *why = "zstd frame header is invalid";
        return QFMT_E_CORRUPT;
    }
    if (content == ZSTD_CONTENTSIZE_UNKNOWN) {
        *why = "zstd frame does not declare its content size";
        return QFMT_E_CORRUPT;
    }
    if (content != raw_size) {
        *why = "zstd frame content size differs from the tensor's raw size";
        return QFMT_E_CORRUPT;
    }
    ZSTD_frameHeader fh;
    if (ZSTD_getFrameHeader(&fh, src, (size_t)src_size) != 0) {
        *why = "zstd frame header is invalid";
        return QFMT_E_CORRUPT;
    }
    /* readers must agree on the largest window: RFC 8878 leaves it to each decoder */
    if (fh.windowSize > (1ull << QFMT__ZSTD_WINDOW_LOG_MAX)) {
        *why = "zstd frame window exceeds 2^27 bytes";
        return QFMT_E_CORRUPT;
    }
    if (fh.dictID != 0) {
        *why = "zstd frame needs a dictionary";
        return QFMT_E_CORRUPT;
    }
    size_t fsize = ZSTD_findFrameCompressedSize(src, (size_t)src_size);
    if (ZSTD_isError(fsize) || fsize != src_size) {
        *why = "stored bytes are not exactly one complete zstd frame";
        return QFMT_E_CORRUPT;
    }
    return QFMT_OK;
}

qfmt_status qfmt__zstd_decode(const qfmt__alloc *al, const void *src, uint64_t src_size,
                              void *dst, uint64_t raw_size, const char **why)
{
    qfmt_status s = qfmt__zstd_check_frame(src, src_size, raw_size, why);
    if (s != QFMT_OK) return s;
    if (raw_size > SIZE_MAX) {
        *why = "tensor too large for this platform";
        return QFMT_E_RANGE;
    }
    ZSTD_DCtx *d = ZSTD_createDCtx_advanced(custom_mem(al));
    if (!d) {
        *why = "cannot allocate a zstd decoder";
        return QFMT_E_NOMEM;
    }
    size_t r = ZSTD_decompressDCtx(d, dst, (size_t)raw_size, src, (size_t)src_size);
    ZSTD_freeDCtx(d);
    if (ZSTD_isError(r)) {
        *why = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? "out of memory in zstd"
                                                                     : "zstd frame does not decode";
        return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? QFMT_E_NOMEM : QFMT_E_CORRUPT;
    }
    if (r != raw_size) {
        *why = "zstd frame decodes to another size than declared";
        return QFMT_E_CORRUPT;
    }
    return QFMT_OK;
}

qfmt_status qfmt__zstd_validate(const qfmt__alloc *al, const void *src, uint64_t src_size,
                                uint64_t raw_size, const char **why)
{
    qfmt_status s = qfmt__zstd_check_frame(src, src_size, raw_size, why);
    if (s != QFMT_OK) return s;
    enum { SCRATCH = 1 << 16 };
    void *scratch = qfmt__malloc(al, SCRATCH);
    ZSTD_DCtx *d = ZSTD_createDCtx_advanced(custom_mem(al));
    if (!scratch || !d) {
        ZSTD_freeDCtx(d);
        qfmt__free(al, scratch);
        *why = "cannot allocate a zstd decoder";
        return QFMT_E_NOMEM;
    }
    /* The window bounds what the streaming decoder allocates (spec: Limits and resources);
     * set it here rather than rely on libzstd's default being the same. */
    if (ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, QFMT__ZSTD_WINDOW_LOG_MAX))) {
        ZSTD_freeDCtx(d);
        qfmt__free(al, scratch);
        *why = "cannot set the zstd window limit";
        return QFMT_E_UNSUPPORTED;
    }
    ZSTD_inBuffer in = {src, (size_t)src_size, 0};
    uint64_t total = 0;
    s = QFMT_OK;
    for (;;) {
        ZSTD_outBuffer out = {scratch, SCRATCH, 0};
        size_t r = ZSTD_decompressStream(d, &out, &in);
        if (ZSTD_isError(r)) {
            bool oom = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation;
            *why = oom ? "out of memory in zstd" : "zstd frame does not decode";
            s = oom ? QFMT_E_NOMEM : QFMT_E_CORRUPT;
            break;
        }
        total += out.pos;
        if (total > raw_size) {
            *why = "zstd frame decodes to more bytes than declared";
            s = QFMT_E_CORRUPT;
            break;
        }
        if (r == 0) break; /* frame complete */
        if (out.pos == 0 && in.pos == in.size) {
            *why = "zstd frame is truncated";
            s = QFMT_E_CORRUPT;
            break;
        }
    }
    if (s == QFMT_OK && (total != raw_size || in.pos != in.size)) {
        *why = "zstd frame decodes to another size than declared";
        s = QFMT_E_CORRUPT;
    }
    ZSTD_freeDCtx(d);
    qfmt__free(al, scratch);
    return s;
}

size_t qfmt__zstd_bound(size_t n) { return ZSTD_compressBound(n); }

static qfmt_status setup_cctx(ZSTD_CCtx *c, int level, uint64_t pledged)
{
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0)) ||
        ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(c, (unsigned long long)pledged)))
        return QFMT_E_ARG;
    return QFMT_OK;
}

qfmt_status qfmt__zstd_compress(const qfmt__alloc *al, const void *src, size_t n, void *dst,
                                size_t dst_cap, int level, size_t *out_size)
{
    ZSTD_CCtx *c = ZSTD_createCCtx_advanced(custom_mem(al));
    if (!c) return QFMT_E_NOMEM;
    qfmt_status s = setup_cctx(c, level, n);
    if (s == QFMT_OK) {
        size_t r = ZSTD_compress2(c, dst, dst_cap, src, n);
        if (ZSTD_isError(r))
            s = ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? QFMT_E_NOMEM : QFMT_E_ARG;
        else
            *out_size = r;
    }
    ZSTD_freeCCtx(c);
    return s;
}

struct qfmt__zstream {
    qfmt__alloc al;
    ZSTD_CCtx *c;
    void *out;
    size_t out_cap;
};

qfmt_status qfmt__zstream_new(const qfmt__alloc *al, qfmt__zstream **out)
{
    *out = NULL;
    qfmt__zstream *z = qfmt__malloc(al, sizeof *z);
    if (!z) return QFMT_E_NOMEM;
    z->al = *al;
    z->out_cap = ZSTD_CStreamOutSize();
    z->c = ZSTD_createCCtx_advanced(custom_mem(al));
    z->out = qfmt__malloc(al, z->out_cap);
    if (!z->c || !z->out) {
        qfmt__zstream_free(z);
        return QFMT_E_NOMEM;
    }
    *out = z;
    return QFMT_OK;
}

void qfmt__zstream_free(qfmt__zstream *z)
{
    if (!z) return;
    ZSTD_freeCCtx(z->c);
    qfmt__free(&z->al, z->out);
    qfmt__free(&z->al, z);
}

qfmt_status qfmt__zstream_begin(qfmt__zstream *z, int level, uint64_t pledged)
{
    ZSTD_CCtx_reset(z->c, ZSTD_reset_session_and_parameters);
    return setup_cctx(z->c, level, pledged);
}

qfmt_status qfmt__zstream_feed(qfmt__zstream *z, const void *src, size_t n, int finish,
                               qfmt__sink sink, void *ctx)
{
    ZSTD_inBuffer in = {src, n, 0};
    ZSTD_EndDirective mode = finish ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
        ZSTD_outBuffer out = {z->out, z->out_cap, 0};
        size_t r = ZSTD_compressStream2(z->c, &out, &in, mode);
        if (ZSTD_isError(r))
            return ZSTD_getErrorCode(r) == ZSTD_error_memory_allocation ? QFMT_E_NOMEM : QFMT_E_ARG;
        if (out.pos) {
            qfmt_status s = sink(ctx, z->out, out.pos);
            if (s != QFMT_OK) return s;
        }
        if (finish ? r == 0 : in.pos == in.size) return QFMT_OK;
    }
}
