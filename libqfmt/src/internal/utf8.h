#ifndef QFMT_INTERNAL_UTF8_H
#define QFMT_INTERNAL_UTF8_H

/* qfmt_utf8_valid (strict RFC 3629) is declared in qfmt.h's static-linking section. */
#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY
#endif
#include "qfmt.h"

#endif
