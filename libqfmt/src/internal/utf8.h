#ifndef QFMT_INTERNAL_UTF8_H
#define QFMT_INTERNAL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* qfmt__utf8_valid: declared in qfmt.h (QFMT_STATIC_LINKING_ONLY). */
#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY
#endif
#include "qfmt.h"

#endif
