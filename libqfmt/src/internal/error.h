/* Filling a qfmt_error: code, errno, file, tensor, byte offset and a printf-style message. */
#ifndef QFMT_INTERNAL_ERROR_H
#define QFMT_INTERNAL_ERROR_H

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
/* Marks err as success (code QFMT_OK, empty fields). */
void qfmt__clear_error(qfmt_error *err);

#endif
