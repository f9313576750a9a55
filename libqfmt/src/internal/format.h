/* Constants of the on-disk layout (spec/qfmt_format.md). */
#ifndef QFMT_INTERNAL_FORMAT_H
#define QFMT_INTERNAL_FORMAT_H

#include <stdint.h>

static const uint8_t qfmt__magic[8] = {0x51, 0x46, 0x4D, 0x54, 0x0D, 0x0A, 0x1A, 0x0A};
static const uint8_t qfmt__end_magic[8] = {'Q', 'F', 'M', 'T', '_', 'E', 'N', 'D'};

/* Header field offsets. */
enum {
    QFMT__H_MAGIC = 0,
    QFMT__H_MAJOR = 8,
    QFMT__H_MINOR = 10,
    QFMT__H_REQUIRED = 12,
    QFMT__H_OPTIONAL = 16,
    QFMT__H_ALIGNMENT = 20,
    QFMT__H_RESERVED = 24,
    QFMT__H_CHECKSUM = 56,
};
/* Footer field offsets, relative to the footer's start. */
enum {
    QFMT__F_META_OFFSET = 0,
    QFMT__F_META_SIZE = 8,
    QFMT__F_DIR_SIZE = 16,
    QFMT__F_META_COUNT = 24,
    QFMT__F_TENSOR_COUNT = 32,
    QFMT__F_RESERVED = 40,
    QFMT__F_CHECKSUM = 48,
    QFMT__F_END_MAGIC = 56,
};
/* Smallest possible encodings, which bound counts before anything is allocated. */
#define QFMT__MIN_META_ENTRY (8u + 1u + 4u + 8u)          /* key len, 1-byte key, type, size */
#define QFMT__MIN_DIR_ENTRY (8u + 1u + 4u * 4u + 8u * 4u) /* 1-byte name, no dims */
/* Width of a scalar metadata type, 0 for string/array/unknown. */
static inline unsigned qfmt__meta_width(uint32_t t)
{
    static const unsigned w[] = {1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 1};
    return t < sizeof w / sizeof w[0] ? w[t] : 0;
}

#endif
