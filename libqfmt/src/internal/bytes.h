/* Little-endian access to on-disk bytes. Every field of a qfmt file goes through these, never
 * through a struct cast onto the map, so alignment and host byte order never matter. */
#ifndef QFMT_INTERNAL_BYTES_H
#define QFMT_INTERNAL_BYTES_H

#include <stdint.h>
#include <string.h>

static inline uint16_t qfmt__rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t qfmt__rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t qfmt__rd64(const uint8_t *p)
{
    return (uint64_t)qfmt__rd32(p) | ((uint64_t)qfmt__rd32(p + 4) << 32);
}
static inline void qfmt__wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void qfmt__wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void qfmt__wr64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#endif
