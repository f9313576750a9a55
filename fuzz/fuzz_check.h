/*
 * fuzz_check.h - what the fuzz targets share. Each target is one translation unit, so these are
 * static: CHECK aborts with the failed condition (an API that contradicts itself is a finding
 * even without a memory error), touch reads every byte (so ASan sees a bad pointer or size), and
 * check_error checks that a returned error is consistent.
 */
#ifndef QFMT_FUZZ_CHECK_H
#define QFMT_FUZZ_CHECK_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static volatile uint8_t fuzz_sink;

static inline void touch(const void *p, uint64_t n)
{
    const uint8_t *b = p;
    uint8_t acc = 0;
    for (uint64_t i = 0; i < n; i++) acc ^= b[i];
    fuzz_sink = acc;
}

/* The code equals the status, every string is terminated, and the error formats. */
static inline void check_error(qfmt_status s, const qfmt_error *e)
{
    CHECK(s != QFMT_OK);
    CHECK(e->code == s);
    CHECK(memchr(e->message, '\0', sizeof e->message) != NULL);
    CHECK(memchr(e->path, '\0', sizeof e->path) != NULL);
    CHECK(memchr(e->tensor, '\0', sizeof e->tensor) != NULL);
    char buf[600];
    const char *text = qfmt_error_format(e, buf, sizeof buf);
    CHECK(text == buf && memchr(buf, '\0', sizeof buf) != NULL);
    CHECK(qfmt_strerror(s) != NULL);
}

#endif
