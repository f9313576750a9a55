#ifndef QFMT_INTERNAL_UTF8_H
#define QFMT_INTERNAL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
 * With allow_nul false a NUL byte also fails. */
bool qfmt__utf8_valid(const uint8_t *s, uint64_t n, bool allow_nul);

#endif
