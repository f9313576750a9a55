/* Filling a qfmt_error: code, errno, file, tensor, byte offset and a printf-style message. */
#ifndef QFMT_INTERNAL_ERROR_H
#define QFMT_INTERNAL_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

#if defined(__GNUC__)
#  define QFMT__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#  define QFMT__PRINTF(a, b)
#endif

/* Returns `code`; fills *err if err is not NULL. path and tensor may be NULL. */
qfmt_status qfmt__fail(qfmt_error *err, qfmt_status code, int sys_errno, const char *path,
                       const char *tensor, uint64_t offset, const char *fmt, ...)
    QFMT__PRINTF(7, 8);
/* Copies NUL-terminated s to out (capacity cap), control characters (C0, DEL, and C1 such as
 * U+009B, a terminal's CSI) written as \xNN, so that a name or key from a hostile file cannot
 * send escape sequences or line breaks to a terminal or a log; cut on a UTF-8 boundary. The one
 * escaping of file text in messages (qfmt__rfail, qfmt_error_format). */
void qfmt__escape_controls(const char *s, char *out, size_t cap);
/* Marks err as success (code QFMT_OK, empty fields). */
void qfmt__clear_error(qfmt_error *err);

#endif
