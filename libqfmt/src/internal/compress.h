/* zstd behind a small interface; compress.c is the one file that includes zstd.h. */
#ifndef QFMT_INTERNAL_COMPRESS_H
#define QFMT_INTERNAL_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "qfmt.h"

/* Largest zstd window a frame may ask for (spec: Codec 1): 2^27 bytes. */
#define QFMT__ZSTD_WINDOW_LOG_MAX 27

/* Checks that src is exactly one zstd frame declaring `raw_size` content bytes. Reads only the
 * frame's headers and block headers, not its content. */
qfmt_status qfmt__zstd_check_frame(const void *src, uint64_t src_size, uint64_t raw_size,
                                   const char **why);
/* Decodes src (checked as above) into dst of exactly raw_size bytes. */
qfmt_status qfmt__zstd_decode(const qfmt__alloc *al, const void *src, uint64_t src_size,
                              void *dst, uint64_t raw_size, const char **why);
/* Decodes src through a small scratch buffer, only to prove it yields exactly raw_size bytes;
 * never allocates raw_size (a frame that expands further is stopped at raw_size + 1). */
qfmt_status qfmt__zstd_validate(const qfmt__alloc *al, const void *src, uint64_t src_size,
                                uint64_t raw_size, const char **why);

/* Whole-buffer compression. dst_cap from qfmt__zstd_bound. */
size_t qfmt__zstd_bound(size_t n);
qfmt_status qfmt__zstd_compress(const qfmt__alloc *al, const void *src, size_t n, void *dst,
                                size_t dst_cap, int level, size_t *out_size);

/* Streaming compression of one frame with a pledged content size. */
typedef struct qfmt__zstream qfmt__zstream;
qfmt_status qfmt__zstream_new(const qfmt__alloc *al, qfmt__zstream **out);
void qfmt__zstream_free(qfmt__zstream *z);
qfmt_status qfmt__zstream_begin(qfmt__zstream *z, int level, uint64_t pledged);
/* Feeds input (NULL/0 with finish=1 to end the frame). Calls sink for every output chunk;
 * a non-OK status from sink stops and is returned. */
typedef qfmt_status (*qfmt__sink)(void *ctx, const void *p, size_t n);
qfmt_status qfmt__zstream_feed(qfmt__zstream *z, const void *src, size_t n, int finish,
                               qfmt__sink sink, void *ctx);

#endif
