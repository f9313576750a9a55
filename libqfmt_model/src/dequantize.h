/* qfmt_dequantize_file with its file I/O through a qfmt_io table (the fuzz target's in-memory
 * scratch, tests' failing writes). Internal: not in the public header. */
#ifndef QFMT_MODEL_DEQUANTIZE_H
#define QFMT_MODEL_DEQUANTIZE_H

#define QFMT_STATIC_LINKING_ONLY
#include "qfmt.h"
#include "qfmt_model.h"

/* io NULL: the real calls (qfmt_io_posix). */
qfmt_status qfmt__dequantize_file_io(const qfmt_reader *r, const char *out, const qfmt_dequantize_opts *opts,
                                     const qfmt_io *io, qfmt_dequantize_result *res, qfmt_error *err);

#endif
