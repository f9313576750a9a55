/*
 * hostile.c - builds hostile qfmt files from a valid one (see hostile.h).
 *
 * Each case names its bug class. Offsets come from parsing the base file, never from constants
 * that would silently go stale if the writer's layout changed; the parser below is independent of
 * the library's reader (it is written from spec/qfmt_format.md).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hostile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- Little-endian bytes -------------------------------------------------------------------- */
static uint32_t hg32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t hg64(const uint8_t *p) { return (uint64_t)hg32(p) | ((uint64_t)hg32(p + 4) << 32); }
static void hp16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void hp32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void hp64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* ---- The base file and its layout ---------------------------------------------------------- */
#define HB_MAX_T 8
#define HB_MAX_M 32

typedef struct {
    uint64_t entry_off, entry_end, name_off, name_len;
    uint64_t type_off, codec_off, ndim_off, reserved_off, dims_off;
    uint64_t offset_off, stored_off, raw_off, checksum_off;
    uint32_t type, codec, ndim;
    uint64_t dims[QFMT_MAX_DIMS];
    uint64_t offset, stored, raw;
    char name[64];
} hb_tensor;

typedef struct {
    uint64_t entry_off, entry_end, key_off, key_len, vtype_off, vsize_off, value_off, vsize;
    uint32_t vtype;
    char key[64];
} hb_meta;

struct hostile_base {
    uint8_t *buf;
    size_t size;
    uint32_t align;
    uint64_t meta_off, meta_size, dir_off, dir_size, foff, nm, nt;
    hb_meta m[HB_MAX_M];
    hb_tensor t[HB_MAX_T];
};

/* Tensor indexes of the base, in file order. */
enum { T_F32, T_F16, T_Q80, T_SCALAR, T_EMPTY, T_ZSTD, T_COUNT };
static const char *const tnames[T_COUNT] = {
    "blk.0.attn_q.f32", "blk.0.attn_k.f16", "blk.0.ffn_up.q80",
    "blk.0.scalar.i32", "blk.0.empty_.q80", "blk.0.zstd_u8.z8",
};
#define ZSTD_RAW 4096u

static int parse_layout(hostile_base *b)
{
    const uint8_t *buf = b->buf;
    size_t size = b->size;
    if (size < 128) return -1;
    b->align = hg32(buf + 20);
    b->foff = size - 64;
    const uint8_t *f = buf + b->foff;
    b->meta_off = hg64(f);
    b->meta_size = hg64(f + 8);
    b->dir_size = hg64(f + 16);
    b->nm = hg64(f + 24);
    b->nt = hg64(f + 32);
    b->dir_off = b->meta_off + b->meta_size;
    if (b->dir_off + b->dir_size != b->foff || b->nm > HB_MAX_M || b->nt > HB_MAX_T) return -1;
    uint64_t p = b->meta_off;
    for (uint64_t i = 0; i < b->nm; i++) {
        hb_meta *m = &b->m[i];
        m->entry_off = p;
        m->key_len = hg64(buf + p);
        if (m->key_len >= sizeof m->key || p + 8 + m->key_len + 12 > b->dir_off) return -1;
        m->key_off = p + 8;
        memcpy(m->key, buf + m->key_off, (size_t)m->key_len);
        m->key[m->key_len] = 0;
        m->vtype_off = m->key_off + m->key_len;
        m->vsize_off = m->vtype_off + 4;
        m->value_off = m->vsize_off + 8;
        m->vtype = hg32(buf + m->vtype_off);
        m->vsize = hg64(buf + m->vsize_off);
        if (m->vsize > b->dir_off - m->value_off) return -1;
        p = m->entry_end = m->value_off + m->vsize;
    }
    if (p != b->dir_off) return -1;
    for (uint64_t i = 0; i < b->nt; i++) {
        hb_tensor *t = &b->t[i];
        t->entry_off = p;
        t->name_len = hg64(buf + p);
        if (t->name_len >= sizeof t->name || p + 8 + t->name_len + 16 > b->foff) return -1;
        t->name_off = p + 8;
        memcpy(t->name, buf + t->name_off, (size_t)t->name_len);
        t->name[t->name_len] = 0;
        t->type_off = t->name_off + t->name_len;
        t->codec_off = t->type_off + 4;
        t->ndim_off = t->codec_off + 4;
        t->reserved_off = t->ndim_off + 4;
        t->dims_off = t->reserved_off + 4;
        t->type = hg32(buf + t->type_off);
        t->codec = hg32(buf + t->codec_off);
        t->ndim = hg32(buf + t->ndim_off);
        if (t->ndim > QFMT_MAX_DIMS || t->dims_off + 8ull * t->ndim + 32 > b->foff) return -1;
        for (uint32_t d = 0; d < t->ndim; d++) t->dims[d] = hg64(buf + t->dims_off + 8ull * d);
        t->offset_off = t->dims_off + 8ull * t->ndim;
        t->stored_off = t->offset_off + 8;
        t->raw_off = t->stored_off + 8;
        t->checksum_off = t->raw_off + 8;
        t->offset = hg64(buf + t->offset_off);
        t->stored = hg64(buf + t->stored_off);
        t->raw = hg64(buf + t->raw_off);
        p = t->entry_end = t->checksum_off + 8;
    }
    if (p != b->foff) return -1;
    /* the cases rely on this shape */
    if (b->nt != T_COUNT || b->t[T_ZSTD].codec != QFMT_CODEC_ZSTD || b->align != 32) return -1;
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(b->t[i].name, tnames[i]) != 0) return -1;
    return 0;
}

static const hb_meta *meta(const hostile_base *b, const char *key)
{
    for (uint64_t i = 0; i < b->nm; i++)
        if (strcmp(b->m[i].key, key) == 0) return &b->m[i];
    return NULL;
}

static qfmt_status write_base(const char *path)
{
    qfmt_write_opts wo;
    memset(&wo, 0, sizeof wo);
    wo.alignment = 32;
    wo.no_fsync = true;
    qfmt_writer *w = NULL;
    qfmt_status s = qfmt_writer_create(&w, path, &wo, NULL);
    if (s != QFMT_OK) return s;
    /* metadata: every scalar type, a string, an array of each scalar type, strings last */
    static const char *const sk[] = {"m.u8", "m.i8", "m.u16", "m.i16", "m.u32", "m.i32",
                                     "m.u64", "m.i64", "m.f32", "m.f64", "m.bool"};
    static const char *const ak[] = {"m.a.u8", "m.a.i8", "m.a.u16", "m.a.i16", "m.a.u32", "m.a.i32",
                                     "m.a.u64", "m.a.i64", "m.a.f32", "m.a.f64", "m.a.bool"};
    uint8_t elems[4 * 8];
    for (size_t i = 0; i < sizeof elems; i++) elems[i] = (uint8_t)(i % 2); /* valid bools too */
    for (uint32_t t = QFMT_META_U8; t <= QFMT_META_BOOL && s == QFMT_OK; t++) {
        qfmt_value v;
        memset(&v, 0, sizeof v);
        v.type = t;
        if (t == QFMT_META_F32 || t == QFMT_META_F64) v.v.f = 0.5;
        else if (t == QFMT_META_I8 || t == QFMT_META_I16 || t == QFMT_META_I32 || t == QFMT_META_I64)
            v.v.i = -7;
        else v.v.u = 1;
        s = qfmt_writer_set_value(w, sk[t], &v, NULL);
        if (s == QFMT_OK) s = qfmt_writer_set_array(w, ak[t], t, elems, 4, NULL);
    }
    if (s == QFMT_OK) s = qfmt_writer_set_string(w, "m.str", "hostile\xC3\xA9", 9, NULL);
    const char *toks[3] = {"ab", "cde", ""};
    if (s == QFMT_OK) s = qfmt_writer_set_string_array(w, "z.tokens", toks, NULL, 3, NULL);

    float a[6] = {1.0f, -2.0f, 3.0f, 0.25f, -0.5f, 8.0f};
    uint16_t h[4] = {0x3C00, 0xC000, 0x3800, 0x0001};
    uint8_t q[2 * 34];
    memset(q, 0, sizeof q);
    for (int blk = 0; blk < 2; blk++) {
        hp16(q + 34 * blk, 0x3C00); /* scale 1.0 */
        for (int j = 0; j < 32; j++) q[34 * blk + 2 + j] = (uint8_t)(j - 16);
    }
    int32_t sc = 42;
    uint8_t *z = malloc(ZSTD_RAW);
    if (!z) s = QFMT_E_NOMEM;
    for (uint32_t i = 0; z && i < ZSTD_RAW; i++) z[i] = (uint8_t)((i / 16) % 4);
    struct {
        uint32_t type, codec, ndim;
        uint64_t dims[2];
        const void *data;
        uint64_t size;
    } td[T_COUNT] = {
        {QFMT_TYPE_F32, QFMT_CODEC_NONE, 2, {2, 3}, a, sizeof a},
        {QFMT_TYPE_F16, QFMT_CODEC_NONE, 1, {4, 0}, h, sizeof h},
        {QFMT_TYPE_Q8_0, QFMT_CODEC_NONE, 2, {2, 32}, q, sizeof q},
        {QFMT_TYPE_I32, QFMT_CODEC_NONE, 0, {0, 0}, &sc, sizeof sc},
        {QFMT_TYPE_Q8_0, QFMT_CODEC_NONE, 2, {0, 32}, a, 0},
        {QFMT_TYPE_U8, QFMT_CODEC_ZSTD, 1, {ZSTD_RAW, 0}, z, ZSTD_RAW},
    };
    for (int i = 0; i < T_COUNT && s == QFMT_OK; i++) {
        qfmt_tensor_desc d;
        memset(&d, 0, sizeof d);
        d.name = tnames[i];
        d.type = td[i].type;
        d.codec = td[i].codec;
        d.ndim = td[i].ndim;
        d.dims[0] = td[i].dims[0];
        d.dims[1] = td[i].dims[1];
        s = qfmt_writer_add_tensor(w, &d, td[i].data, td[i].size, NULL);
    }
    if (s == QFMT_OK) s = qfmt_writer_finish(w, NULL);
    qfmt_writer_free(w);
    free(z);
    return s;
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    uint8_t *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n > 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n)) != NULL &&
        fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *size = n > 0 ? (size_t)n : 0;
    return b;
}

int hostile_base_make(const char *path, hostile_base **out)
{
    *out = NULL;
    if (write_base(path) != QFMT_OK) return -1;
    hostile_base *b = calloc(1, sizeof *b);
    if (!b) return -1;
    b->buf = read_all(path, &b->size);
    if (!b->buf || parse_layout(b) != 0) {
        hostile_base_free(b);
        return -1;
    }
    *out = b;
    return 0;
}

void hostile_base_free(hostile_base *b)
{
    if (!b) return;
    free(b->buf);
    free(b);
}

const uint8_t *hostile_base_bytes(const hostile_base *b, size_t *size)
{
    *size = b->size;
    return b->buf;
}

/* ---- Patching ------------------------------------------------------------------------------- */
static int dup_base(const hostile_base *b, hostile_file *f)
{
    f->buf = malloc(b->size);
    if (!f->buf) return -1;
    memcpy(f->buf, b->buf, b->size);
    f->size = b->size;
    return 0;
}

static void fix_header(hostile_file *f) { hp64(f->buf + 56, qfmt_checksum(f->buf, 56)); }

/* Recomputes the index checksum from the footer's Metadata_Offset (left alone if it is past
 * the end, as in the cases that break the footer itself). */
static void fix_index(hostile_file *f)
{
    uint64_t mo = hg64(f->buf + f->size - 64);
    if (mo <= f->size - 16) hp64(f->buf + f->size - 16, qfmt_checksum(f->buf + mo, f->size - 16 - mo));
}

/* dup, patch one field (width 1, 2, 4 or 8 bytes), recompute the index checksum. */
static int patch(const hostile_base *b, hostile_file *f, uint64_t at, int width, uint64_t v,
                 uint64_t expect)
{
    if (dup_base(b, f)) return -1;
    uint8_t *p = f->buf + at;
    switch (width) {
    case 1: p[0] = (uint8_t)v; break;
    case 2: hp16(p, (uint16_t)v); break;
    case 4: hp32(p, (uint32_t)v); break;
    default: hp64(p, v); break;
    }
    if (at >= 64) fix_index(f);
    else fix_header(f);
    f->offset = expect;
    return 0;
}

/* Lays out a file from its parts: `data` is everything before the metadata (header and data
 * region, its length a multiple of the alignment), then metadata, directory and a footer with
 * correct checksums. */
static int assemble(hostile_file *f, const uint8_t *data, uint64_t data_len, const uint8_t *m,
                    uint64_t mlen, uint64_t mcount, const uint8_t *d, uint64_t dlen,
                    uint64_t tcount)
{
    size_t size = (size_t)(data_len + mlen + dlen + 64);
    uint8_t *buf = calloc(size, 1);
    if (!buf) return -1;
    memcpy(buf, data, (size_t)data_len);
    memcpy(buf + data_len, m, (size_t)mlen);
    memcpy(buf + data_len + mlen, d, (size_t)dlen);
    uint8_t *foot = buf + size - 64;
    hp64(foot, data_len);
    hp64(foot + 8, mlen);
    hp64(foot + 16, dlen);
    hp64(foot + 24, mcount);
    hp64(foot + 32, tcount);
    memcpy(foot + 56, "QFMT_END", 8);
    f->buf = buf;
    f->size = size;
    fix_index(f);
    return 0;
}

/* The base with its metadata section cut `keep` bytes into the last entry. */
static int cut_meta(const hostile_base *b, hostile_file *f, uint64_t keep, uint64_t expect)
{
    const hb_meta *last = &b->m[b->nm - 1];
    uint64_t mlen = last->entry_off - b->meta_off + keep;
    f->offset = expect;
    return assemble(f, b->buf, b->meta_off, b->buf + b->meta_off, mlen, b->nm,
                    b->buf + b->dir_off, b->dir_size, b->nt);
}

/* The base with its directory cut `keep` bytes into the last entry. */
static int cut_dir(const hostile_base *b, hostile_file *f, uint64_t keep, uint64_t expect)
{
    const hb_tensor *last = &b->t[b->nt - 1];
    uint64_t dlen = last->entry_off - b->dir_off + keep;
    f->offset = expect;
    return assemble(f, b->buf, b->meta_off, b->buf + b->meta_off, b->meta_size, b->nm,
                    b->buf + b->dir_off, dlen, b->nt);
}

/* The base with the last tensor (the zstd one) storing `stored` instead, its checksum right;
 * raw and dims[0] replaced when non-zero. The error, if any, names the tensor's offset. */
static int replace_zstd(const hostile_base *b, hostile_file *f, const uint8_t *stored,
                        uint64_t n, uint64_t raw)
{
    const hb_tensor *t = &b->t[T_ZSTD];
    uint64_t data_len = (t->offset + n + b->align - 1) & ~(uint64_t)(b->align - 1);
    uint8_t *data = calloc((size_t)data_len, 1);
    uint8_t *dir = malloc((size_t)b->dir_size);
    if (!data || !dir) {
        free(data);
        free(dir);
        return -1;
    }
    memcpy(data, b->buf, (size_t)t->offset);
    memcpy(data + t->offset, stored, (size_t)n);
    memcpy(dir, b->buf + b->dir_off, (size_t)b->dir_size);
    uint8_t *e = dir - b->dir_off; /* absolute offsets of the base index into dir */
    hp64(e + t->stored_off, n);
    hp64(e + t->checksum_off, qfmt_checksum(stored, (size_t)n));
    if (raw) {
        hp64(e + t->raw_off, raw);
        hp64(e + t->dims_off, raw); /* u8[raw] */
    }
    int rc = assemble(f, data, data_len, b->buf + b->meta_off, b->meta_size, b->nm, dir,
                      b->dir_size, b->nt);
    free(data);
    free(dir);
    f->offset = t->offset;
    return rc;
}

/* ---- zstd frames by hand (RFC 8878) ------------------------------------------------------- */
/* Frame header with Frame_Content_Size `fcs` (none if UINT64_MAX). wdesc is the
 * Window_Descriptor, used when not single-segment; dict a Dictionary_ID (0: none). */
static size_t zhdr(uint8_t *o, bool single, uint8_t wdesc, uint32_t dict, uint64_t fcs)
{
    size_t p = 4;
    hp32(o, 0xFD2FB528u);
    unsigned fcs_flag, fcs_bytes;
    if (fcs == UINT64_MAX) fcs_flag = 0, fcs_bytes = 0, single = false;
    else if (single && fcs < 256) fcs_flag = 0, fcs_bytes = 1;
    else if (fcs >= 256 && fcs < 65536 + 256) fcs_flag = 1, fcs_bytes = 2;
    else if (fcs <= UINT32_MAX) fcs_flag = 2, fcs_bytes = 4;
    else fcs_flag = 3, fcs_bytes = 8;
    unsigned dflag = dict == 0 ? 0 : dict < 256 ? 1 : dict < 65536 ? 2 : 3;
    o[p++] = (uint8_t)((fcs_flag << 6) | (single ? 0x20u : 0u) | dflag);
    if (!single) o[p++] = wdesc;
    if (dflag == 1) o[p++] = (uint8_t)dict;
    else if (dflag == 2) hp16(o + p, (uint16_t)dict), p += 2;
    else if (dflag == 3) hp32(o + p, dict), p += 4;
    if (fcs_bytes == 1) o[p++] = (uint8_t)fcs;
    else if (fcs_bytes == 2) hp16(o + p, (uint16_t)(fcs - 256)), p += 2;
    else if (fcs_bytes == 4) hp32(o + p, (uint32_t)fcs), p += 4;
    else if (fcs_bytes == 8) hp64(o + p, fcs), p += 8;
    return p;
}
static size_t zblock_hdr(uint8_t *o, unsigned type, uint32_t size, bool last)
{
    uint32_t h = (size << 3) | (type << 1) | (last ? 1u : 0u);
    o[0] = (uint8_t)h;
    o[1] = (uint8_t)(h >> 8);
    o[2] = (uint8_t)(h >> 16);
    return 3;
}
/* n bytes of raw blocks (at most 128 KiB each). */
static size_t zraw(uint8_t *o, const uint8_t *d, size_t n, bool last)
{
    size_t p = 0;
    do {
        size_t bs = n > (128u << 10) ? (128u << 10) : n;
        p += zblock_hdr(o + p, 0, (uint32_t)bs, last && bs == n);
        memcpy(o + p, d, bs);
        p += bs;
        d += bs;
        n -= bs;
    } while (n);
    return p;
}
/* `count` RLE blocks of `bs` copies of byte c. */
static size_t zrle(uint8_t *o, uint8_t c, uint32_t bs, size_t count, bool last)
{
    size_t p = 0;
    for (size_t i = 0; i < count; i++) {
        p += zblock_hdr(o + p, 1, bs, last && i + 1 == count);
        o[p++] = c;
    }
    return p;
}

static uint8_t *zbuf(size_t n) { return malloc(n); }

/* The zstd tensor's raw content, as the base stores it. */
static void zcontent(uint8_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)((i / 16) % 4);
}

/* A frame declaring `fcs` with `n` raw content bytes. */
static int zstd_raw_case(const hostile_base *b, hostile_file *f, bool single, uint8_t wdesc,
                         uint32_t dict, uint64_t fcs, size_t n, size_t trailing, size_t cut)
{
    uint8_t *c = malloc(n), *o = zbuf(n + 64 + trailing);
    if (!c || !o) {
        free(c);
        free(o);
        return -1;
    }
    zcontent(c, n);
    size_t p = zhdr(o, single, wdesc, dict, fcs);
    p += zraw(o + p, c, n, true);
    memset(o + p, 0xAB, trailing);
    p += trailing;
    int rc = replace_zstd(b, f, o, p - cut, 0);
    free(c);
    free(o);
    return rc;
}

/* ---- The cases ------------------------------------------------------------------------------ */
typedef int (*case_fn)(const hostile_base *b, hostile_file *f);
#define T(i) (&b->t[i])
#define FOFF (b->foff)

/* header */
static int c_bad_magic(const hostile_base *b, hostile_file *f) { return patch(b, f, 3, 1, 'X', 0); }
static int c_gguf_magic(const hostile_base *b, hostile_file *f)
{
    if (dup_base(b, f)) return -1;
    memcpy(f->buf, "GGUF\x03\0\0\0", 8);
    f->offset = 0;
    return 0;
}
static int c_bad_magic_short(const hostile_base *b, hostile_file *f)
{
    if (dup_base(b, f)) return -1;
    f->size = 100; /* too short for a qfmt file, and not one anyway */
    f->buf[0] = 'q';
    f->offset = 0;
    return 0;
}
static int c_empty_file(const hostile_base *b, hostile_file *f)
{
    (void)b;
    f->buf = malloc(1);
    f->size = 0;
    f->offset = 0;
    return f->buf ? 0 : -1;
}
static int c_version_2(const hostile_base *b, hostile_file *f)
{
    int rc = patch(b, f, 8, 2, 2, 8);
    return rc;
}
static int c_version_ffff(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, 8, 2, 0xFFFF, 8);
}
static int c_header_checksum_stale(const hostile_base *b, hostile_file *f)
{
    if (dup_base(b, f)) return -1;
    hp32(f->buf + 16, 1); /* optional features, checksum left as it was */
    f->offset = 56;
    return 0;
}
static int c_required_feature(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, 12, 4, 1, 12);
}
static int c_align_zero(const hostile_base *b, hostile_file *f) { return patch(b, f, 20, 4, 0, 20); }
static int c_align_2p31(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, 20, 4, 1u << 31, 20);
}
static int c_align_48(const hostile_base *b, hostile_file *f) { return patch(b, f, 20, 4, 48, 20); }
static int c_align_u32max(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, 20, 4, UINT32_MAX, 20);
}
static int c_align_16(const hostile_base *b, hostile_file *f) { return patch(b, f, 20, 4, 16, 20); }
static int c_align_max_valid(const hostile_base *b, hostile_file *f)
{
    /* 2^20 is allowed, but then the data region would start past the end of this file */
    return patch(b, f, 20, 4, QFMT_MAX_ALIGNMENT, FOFF);
}
static int c_header_reserved(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, 40, 1, 1, 40);
}

/* truncation of the whole file */
static int truncated(const hostile_base *b, hostile_file *f, uint64_t len)
{
    if (dup_base(b, f)) return -1;
    f->size = (size_t)len;
    f->offset = len < 128 ? len : len - 8; /* short file, or no End_Magic */
    return 0;
}
static int c_trunc_header(const hostile_base *b, hostile_file *f) { return truncated(b, f, 40); }
static int c_trunc_data(const hostile_base *b, hostile_file *f)
{
    return truncated(b, f, T(T_ZSTD)->offset + 3);
}
static int c_trunc_meta(const hostile_base *b, hostile_file *f)
{
    return truncated(b, f, b->meta_off + 30);
}
static int c_trunc_dir(const hostile_base *b, hostile_file *f)
{
    return truncated(b, f, b->dir_off + 30);
}
static int c_trunc_footer(const hostile_base *b, hostile_file *f)
{
    return truncated(b, f, b->size - 20);
}

/* footer */
static int c_footer_reserved(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 40, 8, 1, FOFF + 40);
}
static int c_index_checksum_stale(const hostile_base *b, hostile_file *f)
{
    if (dup_base(b, f)) return -1;
    f->buf[T(T_F32)->reserved_off] = 1;
    f->offset = FOFF + 48;
    return 0;
}
static int c_meta_off_misaligned(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF, 8, b->meta_off + 4, FOFF);
}
static int c_meta_off_in_header(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF, 8, 0, FOFF);
}
static int c_meta_off_near_2p64(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF, 8, UINT64_MAX - 31, FOFF); /* aligned: the sum wraps */
}
static int c_meta_size_2p63(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 8, 8, 1ull << 63, FOFF + 8);
}
static int c_dir_size_u64max(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 16, 8, UINT64_MAX, FOFF + 16);
}
static int c_sizes_shifted(const hostile_base *b, hostile_file *f)
{
    if (patch(b, f, FOFF + 8, 8, b->meta_size + 32, b->dir_off)) return -1;
    hp64(f->buf + FOFF + 16, b->dir_size - 32);
    fix_index(f);
    return 0;
}

/* counts */
static int c_tcount_u64max(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 32, 8, UINT64_MAX, FOFF + 32);
}
static int c_tcount_2p32(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 32, 8, 1ull << 32, FOFF + 32);
}
static int c_tcount_2p24p1(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 32, 8, QFMT_MAX_TENSORS + 1ull, FOFF + 32);
}
static int c_tcount_plus1(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 32, 8, b->nt + 1, FOFF);
}
static int c_tcount_minus1(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 32, 8, b->nt - 1, T(T_ZSTD)->entry_off);
}
static int c_mcount_u64max(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 24, 8, UINT64_MAX, FOFF + 24);
}
static int c_mcount_2p32(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 24, 8, 1ull << 32, FOFF + 24);
}
static int c_mcount_plus1(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 24, 8, b->nm + 1, b->dir_off);
}
static int c_mcount_minus1(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 24, 8, b->nm - 1, b->m[b->nm - 1].entry_off);
}
static int c_mcount_zero(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, FOFF + 24, 8, 0, b->meta_off);
}

/* metadata entries */
#define MK(key) meta(b, key)
static int mpatch(const hostile_base *b, hostile_file *f, const char *key, int field, int width,
                  uint64_t v, int expect_field)
{
    const hb_meta *m = MK(key);
    if (!m) return -1;
    uint64_t offs[] = {m->entry_off, m->key_off, m->vtype_off, m->vsize_off, m->value_off};
    if (field / 16 > 4 || expect_field / 16 > 4) return -1;
    return patch(b, f, offs[field / 16] + (unsigned)field % 16, width, v,
                 offs[expect_field / 16] + (unsigned)expect_field % 16);
}
/* field = 16 * part + delta (delta < 16), part: 0 entry, 1 key, 2 type, 3 size, 4 value */
#define F_ENTRY 0
#define F_KEY 16
#define F_TYPE 32
#define F_SIZE 48
#define F_VALUE 64

static int c_key_len_zero(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.bool", F_ENTRY, 8, 0, F_ENTRY);
}
static int c_key_len_u64max(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.i32", F_ENTRY, 8, UINT64_MAX, F_ENTRY);
}
static int c_key_len_2p32(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.i32", F_ENTRY, 8, (1ull << 32) + 5, F_ENTRY);
}
static int c_key_len_257(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.i32", F_ENTRY, 8, QFMT_MAX_KEY_LEN + 1, F_ENTRY);
}
static int c_key_not_utf8(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u64", F_KEY + 2, 1, 0xFF, F_KEY);
}
static int c_key_overlong(const hostile_base *b, hostile_file *f)
{
    if (mpatch(b, f, "m.u64", F_KEY + 2, 1, 0xC0, F_KEY)) return -1;
    f->buf[MK("m.u64")->key_off + 3] = 0x80; /* U+0000 as two bytes */
    fix_index(f);
    return 0;
}
static int c_key_nul(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u64", F_KEY + 2, 1, 0, F_KEY);
}
static int c_key_duplicate(const hostile_base *b, hostile_file *f)
{
    /* "m.u32" becomes "m.u16", the key before it */
    if (mpatch(b, f, "m.u32", F_KEY + 3, 1, '1', F_KEY)) return -1;
    f->buf[MK("m.u32")->key_off + 4] = '6';
    fix_index(f);
    return 0;
}
static int c_key_out_of_order(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u32", F_KEY + 2, 1, 'a', F_KEY);
}
/* "m.str" becomes "m.s" ESC newline: still sorted, valid UTF-8; its value is then invalid, and
 * the message quoting the key must not carry the controls. */
static int c_key_control_chars(const hostile_base *b, hostile_file *f)
{
    if (mpatch(b, f, "m.str", F_KEY + 3, 1, 0x1B, F_VALUE)) return -1;
    f->buf[MK("m.str")->key_off + 4] = '\n';
    f->buf[MK("m.str")->value_off] = 0xFF;
    fix_index(f);
    return 0;
}
static int c_value_size_u64max(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.str", F_SIZE, 8, UINT64_MAX, F_SIZE);
}
static int c_value_size_2p32(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.str", F_SIZE, 8, 1ull << 32, F_SIZE);
}
static int c_string_not_utf8(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.str", F_VALUE + 1, 1, 0xFF, F_VALUE);
}
static int c_string_surrogate(const hostile_base *b, hostile_file *f)
{
    if (mpatch(b, f, "m.str", F_VALUE, 1, 0xED, F_VALUE)) return -1;
    f->buf[MK("m.str")->value_off + 1] = 0xA0;
    f->buf[MK("m.str")->value_off + 2] = 0x80;
    fix_index(f);
    return 0;
}
static int c_scalar_width(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u32", F_TYPE, 4, QFMT_META_U16, F_VALUE);
}
static int c_bool_2(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.bool", F_VALUE, 1, 2, F_VALUE);
}
static int c_array_nested(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.u8", F_VALUE, 4, QFMT_META_ARRAY, F_VALUE);
}
static int c_array_count_2p32(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.u16", F_VALUE + 4, 8, 1ull << 32, F_VALUE + 4);
}
static int c_array_count_u64max(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.u64", F_VALUE + 4, 8, UINT64_MAX, F_VALUE + 4);
}
static int c_array_count_wraps(const hostile_base *b, hostile_file *f)
{
    /* Count * 8 wraps to exactly the 32 bytes of elements */
    return mpatch(b, f, "m.a.u64", F_VALUE + 4, 8, (1ull << 61) + 4, F_VALUE + 4);
}
static int c_array_too_small(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u32", F_TYPE, 4, QFMT_META_ARRAY, F_VALUE);
}
static int c_array_bool_2(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.bool", F_VALUE + 13, 1, 2, F_VALUE + 13);
}
static int c_strs_count_u64max(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "z.tokens", F_VALUE + 4, 8, UINT64_MAX, F_VALUE + 4);
}
static int c_strs_count_2p32(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "z.tokens", F_VALUE + 4, 8, 1ull << 32, F_VALUE + 4);
}
/* element 1 of z.tokens ("ab", "cde", ""): its length field */
static uint64_t tok1(const hostile_base *b) { return MK("z.tokens")->value_off + 12 + 8 + 2; }
static int c_strs_len_u64max(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, tok1(b), 8, UINT64_MAX, tok1(b));
}
static int c_strs_len_2p32(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, tok1(b), 8, (1ull << 32) + 3, tok1(b));
}
static int c_strs_not_utf8(const hostile_base *b, hostile_file *f)
{
    return patch(b, f, tok1(b) + 8 + 1, 1, 0xFF, tok1(b) + 8);
}
static int c_strs_leftover(const hostile_base *b, hostile_file *f)
{
    /* count 2: the third string (8 bytes of length 0) is left over */
    uint64_t v = MK("z.tokens")->value_off;
    return patch(b, f, v + 4, 8, 2, v + 12 + 8 + 2 + 8 + 3);
}
static int c_unknown_value_type(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.f64", F_TYPE, 4, 200, F_TYPE) ? -1 : (f->offset = HOSTILE_NO_OFFSET, 0);
}
static int c_unknown_elem_type(const hostile_base *b, hostile_file *f)
{
    if (mpatch(b, f, "m.a.u32", F_VALUE, 4, 99, F_VALUE)) return -1;
    hp64(f->buf + MK("m.a.u32")->value_off + 4, UINT64_MAX); /* unchecked, never used to size */
    fix_index(f);
    f->offset = HOSTILE_NO_OFFSET;
    return 0;
}
static int c_type_confusion(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.u64", F_TYPE, 4, QFMT_META_F64, F_TYPE) ? -1
                                                                   : (f->offset = HOSTILE_NO_OFFSET, 0);
}
static int c_elem_confusion(const hostile_base *b, hostile_file *f)
{
    return mpatch(b, f, "m.a.u32", F_VALUE, 4, QFMT_META_F32, F_VALUE)
               ? -1
               : (f->offset = HOSTILE_NO_OFFSET, 0);
}

/* metadata truncated inside its last entry (z.tokens), the sections re-laid out */
static int c_mtrunc_keylen(const hostile_base *b, hostile_file *f)
{
    return cut_meta(b, f, 4, b->m[b->nm - 1].entry_off);
}
static int c_mtrunc_key(const hostile_base *b, hostile_file *f)
{
    return cut_meta(b, f, 8 + 3, b->m[b->nm - 1].key_off);
}
static int c_mtrunc_type(const hostile_base *b, hostile_file *f)
{
    const hb_meta *m = &b->m[b->nm - 1];
    return cut_meta(b, f, 8 + m->key_len + 2, m->vtype_off);
}
static int c_mtrunc_size(const hostile_base *b, hostile_file *f)
{
    const hb_meta *m = &b->m[b->nm - 1];
    return cut_meta(b, f, 8 + m->key_len + 4 + 3, m->vsize_off);
}
static int c_mtrunc_value(const hostile_base *b, hostile_file *f)
{
    const hb_meta *m = &b->m[b->nm - 1];
    return cut_meta(b, f, 8 + m->key_len + 12 + 5, m->vsize_off);
}

/* directory entries */
static int tpatch(const hostile_base *b, hostile_file *f, int ti, uint64_t at, int width,
                  uint64_t v, uint64_t expect)
{
    (void)ti;
    return patch(b, f, at, width, v, expect);
}
static int c_name_len_zero(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->entry_off, 8, 0, T(T_F32)->entry_off);
}
static int c_name_len_u64max(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->entry_off, 8, UINT64_MAX, T(T_F16)->entry_off);
}
static int c_name_len_2p32(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->entry_off, 8, (1ull << 32) + 16, T(T_F16)->entry_off);
}
static int c_name_len_1025(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->entry_off, 8, QFMT_MAX_NAME_LEN + 1, T(T_F16)->entry_off);
}
static int c_name_not_utf8(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_Q80, T(T_Q80)->name_off + 5, 1, 0xFF, T(T_Q80)->name_off);
}
static int c_name_overlong(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_Q80, T(T_Q80)->name_off + 5, 1, 0xC0, T(T_Q80)->name_off)) return -1;
    f->buf[T(T_Q80)->name_off + 6] = 0xAF; /* '/' as two bytes */
    fix_index(f);
    return 0;
}
static int c_name_surrogate(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_Q80, T(T_Q80)->name_off + 5, 1, 0xED, T(T_Q80)->name_off)) return -1;
    f->buf[T(T_Q80)->name_off + 6] = 0xB0;
    f->buf[T(T_Q80)->name_off + 7] = 0x80;
    fix_index(f);
    return 0;
}
static int c_name_above_10ffff(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_Q80, T(T_Q80)->name_off + 5, 1, 0xF4, T(T_Q80)->name_off)) return -1;
    f->buf[T(T_Q80)->name_off + 6] = 0x90; /* U+110000 */
    f->buf[T(T_Q80)->name_off + 7] = 0x80;
    f->buf[T(T_Q80)->name_off + 8] = 0x80;
    fix_index(f);
    return 0;
}
static int c_name_nul(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_Q80, T(T_Q80)->name_off + 15, 1, 0, T(T_Q80)->name_off);
}
static int c_name_duplicate(const hostile_base *b, hostile_file *f)
{
    /* the zstd tensor (last) takes the scalar's name: the error names the later entry */
    if (dup_base(b, f)) return -1;
    memcpy(f->buf + T(T_ZSTD)->name_off, tnames[T_SCALAR], 16);
    fix_index(f);
    f->offset = T(T_ZSTD)->entry_off;
    return 0;
}
static int c_name_duplicate_first(const hostile_base *b, hostile_file *f)
{
    /* the second tensor takes the first one's name */
    if (dup_base(b, f)) return -1;
    memcpy(f->buf + T(T_F16)->name_off, tnames[T_F32], 16);
    fix_index(f);
    f->offset = T(T_F16)->entry_off;
    return 0;
}
/* A name holding ESC [ 2 J, a newline and U+009B (C1 CSI): valid UTF-8 without NUL, so the
 * file is only wrong in its raw size; the error quoting the name must not carry the controls. */
static int c_name_control_chars(const hostile_base *b, hostile_file *f)
{
    const hb_tensor *t = T(T_F16);
    if (tpatch(b, f, T_F16, t->raw_off, 8, t->raw + 2, t->raw_off)) return -1;
    memcpy(f->buf + t->name_off + 5, "\x1b[2J\n\xc2\x9b", 7);
    fix_index(f);
    return 0;
}
static int c_ndim_9(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->ndim_off, 4, 9, T(T_F32)->ndim_off);
}
static int c_ndim_u32max(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->ndim_off, 4, UINT32_MAX, T(T_F32)->ndim_off);
}
static int c_dir_reserved(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->reserved_off, 4, 1, T(T_F32)->reserved_off);
}
static int c_dims_overflow(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_F32, T(T_F32)->dims_off, 8, 1ull << 32, T(T_F32)->dims_off)) return -1;
    hp64(f->buf + T(T_F32)->dims_off + 8, 1ull << 32);
    fix_index(f);
    return 0;
}
static int c_dims_u64max(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->dims_off, 8, UINT64_MAX, T(T_F32)->dims_off);
}
static int c_dims_over_2p56(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->dims_off, 8, (1ull << 56) + 1, T(T_F16)->dims_off);
}
static int c_bytes_wrap_32bit(const hostile_base *b, hostile_file *f)
{
    /* 2^32 f32 elements: 2^34 bytes, 0 in 32 bits; raw left at 24 */
    if (tpatch(b, f, T_F32, T(T_F32)->dims_off, 8, 1ull << 30, T(T_F32)->raw_off)) return -1;
    hp64(f->buf + T(T_F32)->dims_off + 8, 4);
    fix_index(f);
    return 0;
}
static int c_bytes_huge_consistent(const hostile_base *b, hostile_file *f)
{
    /* f64 [2^28, 2^28]: 2^56 elements, 2^59 bytes, raw and stored saying so: past the end */
    const hb_tensor *t = T(T_F32);
    if (tpatch(b, f, T_F32, t->type_off, 4, QFMT_TYPE_F64, t->stored_off)) return -1;
    hp64(f->buf + t->dims_off, 1ull << 28);
    hp64(f->buf + t->dims_off + 8, 1ull << 28);
    hp64(f->buf + t->raw_off, 1ull << 59);
    hp64(f->buf + t->stored_off, 1ull << 59);
    fix_index(f);
    return 0;
}
static int c_zero_dim_raw(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->dims_off, 8, 0, T(T_F32)->raw_off);
}
static int c_zero_dim_block(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_Q80, T(T_Q80)->dims_off + 8, 8, 0, T(T_Q80)->raw_off);
}
static int c_zero_inner_dim_ok(const hostile_base *b, hostile_file *f)
{
    /* the empty q8_0 tensor [0, 32] becomes [32, 0]: still empty, still valid */
    if (tpatch(b, f, T_EMPTY, T(T_EMPTY)->dims_off, 8, 32, 0)) return -1;
    hp64(f->buf + T(T_EMPTY)->dims_off + 8, 0);
    fix_index(f);
    f->offset = HOSTILE_NO_OFFSET;
    return 0;
}
static int c_partial_block(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_Q80, T(T_Q80)->dims_off, 8, 4, T(T_Q80)->dims_off)) return -1;
    hp64(f->buf + T(T_Q80)->dims_off + 8, 16); /* 64 elements, but rows of 16 */
    fix_index(f);
    return 0;
}
static int c_raw_mismatch(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->raw_off, 8, T(T_F16)->raw + 2, T(T_F16)->raw_off);
}
static int c_stored_ne_raw(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->stored_off, 8, T(T_F16)->stored + 2, T(T_F16)->stored_off);
}
static int c_past_eof(const hostile_base *b, hostile_file *f)
{
    const hb_tensor *t = T(T_ZSTD);
    return tpatch(b, f, T_ZSTD, t->stored_off, 8, t->stored + (1u << 20), t->stored_off);
}
static int c_stored_wraps_zero(const hostile_base *b, hostile_file *f)
{
    const hb_tensor *t = T(T_ZSTD);
    return tpatch(b, f, T_ZSTD, t->stored_off, 8, 0 - t->offset, t->stored_off);
}
static int c_stored_align_wraps(const hostile_base *b, hostile_file *f)
{
    /* offset + stored = 2^64 - 1: aligning that up would wrap to 0 */
    const hb_tensor *t = T(T_ZSTD);
    return tpatch(b, f, T_ZSTD, t->stored_off, 8, UINT64_MAX - t->offset, t->stored_off);
}
static int c_offset_near_2p64(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F32, T(T_F32)->offset_off, 8, UINT64_MAX - 31, T(T_F32)->offset_off);
}
static int c_offset_misaligned(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->offset_off, 8, T(T_F16)->offset + 4, T(T_F16)->offset_off);
}
static int c_offset_overlap(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->offset_off, 8, T(T_F32)->offset, T(T_F16)->offset_off);
}
static int c_offset_out_of_order(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_F32, T(T_F32)->offset_off, 8, T(T_F16)->offset, T(T_F32)->offset_off))
        return -1;
    hp64(f->buf + T(T_F16)->offset_off, T(T_F32)->offset);
    fix_index(f);
    return 0;
}
static int c_offset_gap(const hostile_base *b, hostile_file *f)
{
    const hb_tensor *t = T(T_ZSTD);
    return tpatch(b, f, T_ZSTD, t->offset_off, 8, t->offset + b->align, t->offset_off);
}
static int c_zstd_raw_zero(const hostile_base *b, hostile_file *f)
{
    const hb_tensor *t = T(T_EMPTY);
    return tpatch(b, f, T_EMPTY, t->codec_off, 4, QFMT_CODEC_ZSTD, t->codec_off);
}
static int c_unknown_codec(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->codec_off, 4, 7, HOSTILE_NO_OFFSET);
}
static int c_unknown_type(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_F16, T(T_F16)->type_off, 4, 999, HOSTILE_NO_OFFSET);
}
static int c_unknown_type_huge_dims(const hostile_base *b, hostile_file *f)
{
    if (tpatch(b, f, T_F16, T(T_F16)->type_off, 4, 999, T(T_F16)->dims_off)) return -1;
    hp64(f->buf + T(T_F16)->dims_off, 1ull << 57);
    fix_index(f);
    return 0;
}

/* directory truncated inside its last entry */
static int c_dtrunc_namelen(const hostile_base *b, hostile_file *f)
{
    return cut_dir(b, f, 4, T(T_ZSTD)->entry_off);
}
static int c_dtrunc_name(const hostile_base *b, hostile_file *f)
{
    return cut_dir(b, f, 8 + 5, T(T_ZSTD)->name_off);
}
static int c_dtrunc_fields(const hostile_base *b, hostile_file *f)
{
    return cut_dir(b, f, 8 + 16 + 6, T(T_ZSTD)->type_off);
}
static int c_dtrunc_dims(const hostile_base *b, hostile_file *f)
{
    return cut_dir(b, f, 8 + 16 + 16 + 3, T(T_ZSTD)->dims_off);
}
static int c_dtrunc_tail(const hostile_base *b, hostile_file *f)
{
    return cut_dir(b, f, 8 + 16 + 16 + 8 + 20, T(T_ZSTD)->offset_off);
}

/* 32 zero bytes more between the last tensor and the metadata: every tensor is in place, but
 * the data region does not end where the layout says (step D11) */
static int c_data_region_gap(const hostile_base *b, hostile_file *f)
{
    uint8_t *data = calloc((size_t)b->meta_off + b->align, 1);
    if (!data) return -1;
    memcpy(data, b->buf, (size_t)b->meta_off);
    int rc = assemble(f, data, b->meta_off + b->align, b->buf + b->meta_off, b->meta_size, b->nm,
                      b->buf + b->dir_off, b->dir_size, b->nt);
    free(data);
    f->offset = f->size - 64;
    return rc;
}

/* caught by verify: data no longer matches, every structural checksum recomputed */
static int c_data_corrupt(const hostile_base *b, hostile_file *f)
{
    if (dup_base(b, f)) return -1;
    f->buf[T(T_F16)->offset + 1] ^= 0x40;
    fix_header(f);
    fix_index(f);
    f->offset = T(T_F16)->offset;
    return 0;
}
static int c_checksum_field_forged(const hostile_base *b, hostile_file *f)
{
    return tpatch(b, f, T_Q80, T(T_Q80)->checksum_off, 8, 0x0123456789ABCDEFull,
                  T(T_Q80)->offset);
}
static int c_padding_nonzero(const hostile_base *b, hostile_file *f)
{
    uint64_t end = T(T_F32)->offset + T(T_F32)->stored;
    if (end >= T(T_F16)->offset || dup_base(b, f)) return -1;
    f->buf[end + 2] = 0x5A;
    f->offset = end + 2;
    return 0;
}
static int c_zstd_fcs_small(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, true, 0, 0, ZSTD_RAW - 1, ZSTD_RAW, 0, 0);
}
static int c_zstd_content_short(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, true, 0, 0, ZSTD_RAW, ZSTD_RAW - 1, 0, 0);
}
static int c_zstd_content_long(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, false, 0x50, 0, ZSTD_RAW, ZSTD_RAW + 100, 0, 0);
}
static int c_zstd_no_fcs(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, false, 0x50, 0, UINT64_MAX, ZSTD_RAW, 0, 0);
}
static int c_zstd_window(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, false, 18 << 3, 0, ZSTD_RAW, ZSTD_RAW, 0, 0); /* 2^28 */
}
static int c_zstd_dict(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, true, 0, 7, ZSTD_RAW, ZSTD_RAW, 0, 0);
}
static int c_zstd_trailing(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, true, 0, 0, ZSTD_RAW, ZSTD_RAW, 3, 0);
}
static int c_zstd_truncated(const hostile_base *b, hostile_file *f)
{
    return zstd_raw_case(b, f, true, 0, 0, ZSTD_RAW, ZSTD_RAW, 0, 10);
}
static int c_zstd_skippable(const hostile_base *b, hostile_file *f)
{
    uint8_t o[16];
    hp32(o, 0x184D2A50u);
    hp32(o + 4, 8);
    memset(o + 8, 0, 8);
    return replace_zstd(b, f, o, sizeof o, 0);
}
static int c_zstd_tiny(const hostile_base *b, hostile_file *f)
{
    static const uint8_t o[2] = {0x28, 0xB5}; /* half a magic number */
    return replace_zstd(b, f, o, sizeof o, 0);
}
static int c_zstd_bad_block(const hostile_base *b, hostile_file *f)
{
    uint8_t o[64];
    size_t p = zhdr(o, true, 0, 0, ZSTD_RAW);
    p += zblock_hdr(o + p, 3, 8, true); /* block type 3 is reserved */
    memset(o + p, 0, 8);
    return replace_zstd(b, f, o, p + 8, 0);
}
/* The bomb: declares 4096 bytes (as the directory does), then 8192 RLE blocks of 128 KiB = 1 GiB
 * from a 32 KiB frame. Decoding must stop at the declared size, fast and in bounded memory. */
static int c_zstd_bomb(const hostile_base *b, hostile_file *f)
{
    size_t nblk = 8192;
    uint8_t *o = zbuf(16 + 4 * nblk);
    if (!o) return -1;
    size_t p = zhdr(o, false, 0x50, 0, ZSTD_RAW); /* window 1 MiB */
    p += zrle(o + p, 0x2A, 128u << 10, nblk, true);
    int rc = replace_zstd(b, f, o, p, 0);
    free(o);
    return rc;
}
static int c_zstd_bomb_single(const hostile_base *b, hostile_file *f)
{
    size_t nblk = 4096;
    uint8_t *o = zbuf(16 + 4 * nblk);
    if (!o) return -1;
    size_t p = zhdr(o, true, 0, 0, ZSTD_RAW); /* window = content size */
    p += zrle(o + p, 0x2A, ZSTD_RAW, nblk, true);
    int rc = replace_zstd(b, f, o, p, 0);
    free(o);
    return rc;
}
/* The largest window allowed, declared by a 20-byte frame for a u8[2^27] tensor that then holds
 * one block: verify may hold zstd's 128 MiB window (the documented bound), never more, and stops
 * at the frame's end. */
static int c_zstd_window_max_short(const hostile_base *b, hostile_file *f)
{
    uint8_t o[32];
    size_t p = zhdr(o, false, 17 << 3, 0, 1u << 27); /* window 2^27 */
    p += zrle(o + p, 0x07, 128u << 10, 1, true);
    return replace_zstd(b, f, o, p, 1u << 27);
}
/* Valid: u8[2^24] stored as 128 RLE blocks (~512 bytes). Opening it allocates nothing for the
 * 16 MiB; verify needs zstd's window (at most min(Raw_Size, 2^27) plus a block), not more. */
static int c_zstd_large_valid(const hostile_base *b, hostile_file *f)
{
    const uint32_t raw = 1u << 24;
    size_t nblk = raw / (128u << 10);
    uint8_t *o = zbuf(16 + 4 * nblk);
    if (!o) return -1;
    size_t p = zhdr(o, true, 0, 0, raw);
    p += zrle(o + p, 0x01, 128u << 10, nblk, true);
    int rc = replace_zstd(b, f, o, p, raw);
    free(o);
    f->offset = HOSTILE_NO_OFFSET;
    return rc;
}

#undef T
#undef FOFF

typedef struct {
    const char *name;
    const char *what;
    case_fn fn;
} case_entry;

static const case_entry cases[] = {
    /* header */
    {"bad_magic", "bad magic", c_bad_magic},
    {"gguf_magic", "another format's magic", c_gguf_magic},
    {"bad_magic_short", "bad magic in a file too short for a header and footer",
     c_bad_magic_short},
    {"empty_file", "truncation: no bytes at all", c_empty_file},
    {"version_major_2", "unknown major version", c_version_2},
    {"version_major_65535", "unknown major version (max)", c_version_ffff},
    {"header_checksum_stale", "header changed, checksum not", c_header_checksum_stale},
    {"required_feature", "unknown required feature bit", c_required_feature},
    {"alignment_zero", "padding arithmetic: alignment 0", c_align_zero},
    {"alignment_2p31", "unbounded alignment value", c_align_2p31},
    {"alignment_48", "alignment not a power of two", c_align_48},
    {"alignment_u32max", "alignment 2^32-1", c_align_u32max},
    {"alignment_16", "alignment below the minimum", c_align_16},
    {"alignment_max_past_eof", "largest alignment puts the data past the end", c_align_max_valid},
    {"header_reserved", "reserved header byte set", c_header_reserved},
    /* truncation of the file */
    {"trunc_in_header", "truncation inside the header", c_trunc_header},
    {"trunc_in_data", "truncation inside the tensor data", c_trunc_data},
    {"trunc_in_metadata", "truncation inside the metadata", c_trunc_meta},
    {"trunc_in_directory", "truncation inside the directory", c_trunc_dir},
    {"trunc_in_footer", "truncation inside the footer", c_trunc_footer},
    /* footer */
    {"footer_reserved", "reserved footer field set", c_footer_reserved},
    {"index_checksum_stale", "index changed, checksum not", c_index_checksum_stale},
    {"meta_offset_misaligned", "misaligned metadata offset", c_meta_off_misaligned},
    {"meta_offset_in_header", "metadata offset inside the header", c_meta_off_in_header},
    {"meta_offset_near_2p64", "offset + sizes wrap past 2^64", c_meta_off_near_2p64},
    {"meta_size_2p63", "metadata size beyond the limit", c_meta_size_2p63},
    {"dir_size_u64max", "directory size 2^64-1", c_dir_size_u64max},
    {"section_sizes_shifted", "metadata size lies (directory shrunk to match)", c_sizes_shifted},
    /* counts (CVE-2024-23605) */
    {"tensor_count_u64max", "unchecked tensor count 2^64-1", c_tcount_u64max},
    {"tensor_count_2p32", "unchecked tensor count 2^32", c_tcount_2p32},
    {"tensor_count_2p24p1", "tensor count over QFMT_MAX_TENSORS", c_tcount_2p24p1},
    {"tensor_count_plus_one", "tensor count one too many", c_tcount_plus1},
    {"tensor_count_minus_one", "tensor count one too few", c_tcount_minus1},
    {"meta_count_u64max", "unchecked metadata count 2^64-1", c_mcount_u64max},
    {"meta_count_2p32", "unchecked metadata count 2^32", c_mcount_2p32},
    {"meta_count_plus_one", "metadata count one too many", c_mcount_plus1},
    {"meta_count_minus_one", "metadata count one too few", c_mcount_minus1},
    {"meta_count_zero", "no metadata entries but a non-empty section", c_mcount_zero},
    /* metadata entries */
    {"key_len_zero", "empty key", c_key_len_zero},
    {"key_len_u64max", "key length SIZE_MAX (allocation wrap)", c_key_len_u64max},
    {"key_len_2p32", "key length near 2^32", c_key_len_2p32},
    {"key_len_257", "key length over QFMT_MAX_KEY_LEN", c_key_len_257},
    {"key_not_utf8", "non-UTF-8 key", c_key_not_utf8},
    {"key_overlong_nul", "overlong UTF-8 NUL in a key", c_key_overlong},
    {"key_nul", "NUL byte in a key", c_key_nul},
    {"key_duplicate", "duplicate metadata key", c_key_duplicate},
    {"key_out_of_order", "metadata keys out of order", c_key_out_of_order},
    {"key_control_chars", "escape sequence and newline in a key quoted by an error",
     c_key_control_chars},
    {"value_size_u64max", "string length SIZE_MAX (allocation wrap)", c_value_size_u64max},
    {"value_size_2p32", "string length near 2^32", c_value_size_2p32},
    {"string_not_utf8", "non-UTF-8 string value", c_string_not_utf8},
    {"string_surrogate", "UTF-16 surrogate in a string value", c_string_surrogate},
    {"scalar_width", "scalar of the wrong width", c_scalar_width},
    {"bool_2", "bool value 2", c_bool_2},
    {"array_nested", "nested array deeper than allowed", c_array_nested},
    {"array_count_2p32", "array count near 2^32", c_array_count_2p32},
    {"array_count_u64max", "array count 2^64-1", c_array_count_u64max},
    {"array_count_wraps", "array count * width wrapping to the real size", c_array_count_wraps},
    {"array_too_small", "array value shorter than its header", c_array_too_small},
    {"array_bool_2", "bool array element 2", c_array_bool_2},
    {"str_array_count_u64max", "string array count 2^64-1", c_strs_count_u64max},
    {"str_array_count_2p32", "string array count 2^32", c_strs_count_2p32},
    {"str_array_len_u64max", "string element length SIZE_MAX", c_strs_len_u64max},
    {"str_array_len_2p32", "string element length near 2^32", c_strs_len_2p32},
    {"str_array_not_utf8", "non-UTF-8 string element", c_strs_not_utf8},
    {"str_array_leftover", "bytes left after the last string", c_strs_leftover},
    {"unknown_value_type", "unknown value type: opaque, typed getters refuse", c_unknown_value_type},
    {"unknown_elem_type", "unknown element type with count 2^64-1", c_unknown_elem_type},
    {"type_confusion", "u64 relabelled f64: getters must not trust it", c_type_confusion},
    {"elem_type_confusion", "u32 array relabelled f32", c_elem_confusion},
    /* metadata truncated inside an entry */
    {"meta_trunc_key_length", "truncation inside a key length", c_mtrunc_keylen},
    {"meta_trunc_key", "truncation inside a key", c_mtrunc_key},
    {"meta_trunc_type", "truncation inside a value type", c_mtrunc_type},
    {"meta_trunc_size", "truncation inside a value size", c_mtrunc_size},
    {"meta_trunc_value", "truncation inside a value", c_mtrunc_value},
    /* directory entries */
    {"name_len_zero", "empty tensor name", c_name_len_zero},
    {"name_len_u64max", "name length SIZE_MAX (allocation wrap)", c_name_len_u64max},
    {"name_len_2p32", "name length near 2^32", c_name_len_2p32},
    {"name_len_1025", "name length over QFMT_MAX_NAME_LEN", c_name_len_1025},
    {"name_not_utf8", "non-UTF-8 tensor name", c_name_not_utf8},
    {"name_overlong", "overlong UTF-8 in a name", c_name_overlong},
    {"name_surrogate", "UTF-16 surrogate in a name", c_name_surrogate},
    {"name_above_10ffff", "code point above U+10FFFF in a name", c_name_above_10ffff},
    {"name_nul", "NUL byte in a name", c_name_nul},
    {"name_duplicate", "duplicate tensor names (far apart)", c_name_duplicate},
    {"name_duplicate_adjacent", "duplicate tensor names (adjacent)", c_name_duplicate_first},
    {"name_control_chars", "escape sequences and C1 CSI in a name quoted by an error",
     c_name_control_chars},
    {"ndim_9", "more dimensions than allowed", c_ndim_9},
    {"ndim_u32max", "dimension count 2^32-1", c_ndim_u32max},
    {"dir_reserved", "reserved directory field set", c_dir_reserved},
    {"dims_overflow", "unchecked dimensions: product 2^64 (CVE-2024-21802)", c_dims_overflow},
    {"dims_u64max", "dimension 2^64-1", c_dims_u64max},
    {"dims_over_2p56", "elements over QFMT_MAX_ELEMENTS", c_dims_over_2p56},
    {"bytes_wrap_32bit", "element count x type size wrapping in 32 bits (CVE-2026-33298)",
     c_bytes_wrap_32bit},
    {"bytes_huge_consistent", "2^59 bytes declared consistently: past the end", c_bytes_huge_consistent},
    {"zero_dim_raw", "zero dimension with a non-zero size", c_zero_dim_raw},
    {"zero_dim_block", "zero innermost dimension of a block type, non-zero size", c_zero_dim_block},
    {"zero_inner_dim_ok", "zero innermost dimension, empty: valid (no SIGFPE)", c_zero_inner_dim_ok},
    {"partial_block", "rows not a whole number of blocks", c_partial_block},
    {"raw_size_mismatch", "raw size differs from type x dims", c_raw_mismatch},
    {"stored_ne_raw", "uncompressed stored size differs from raw", c_stored_ne_raw},
    {"offset_past_eof", "offset + size past the end of the file", c_past_eof},
    {"stored_wraps_to_zero", "offset + size wrapping to 0", c_stored_wraps_zero},
    {"stored_align_wraps", "offset + size = 2^64-1: padding would wrap to 0", c_stored_align_wraps},
    {"offset_near_2p64", "tensor offset near 2^64", c_offset_near_2p64},
    {"offset_misaligned", "misaligned tensor data", c_offset_misaligned},
    {"offset_overlap", "overlapping tensors", c_offset_overlap},
    {"offset_out_of_order", "tensors out of order", c_offset_out_of_order},
    {"offset_gap", "a gap between tensors", c_offset_gap},
    {"zstd_raw_zero", "empty tensor marked compressed", c_zstd_raw_zero},
    {"unknown_codec", "unknown codec: opens, cannot be read", c_unknown_codec},
    {"unknown_type", "unknown tensor type: opens, cannot be read", c_unknown_type},
    {"unknown_type_huge_dims", "unknown type does not skip the dimension checks",
     c_unknown_type_huge_dims},
    {"data_region_gap", "data region longer than its tensors", c_data_region_gap},
    /* directory truncated inside an entry */
    {"dir_trunc_name_length", "truncation inside a name length", c_dtrunc_namelen},
    {"dir_trunc_name", "truncation inside a name", c_dtrunc_name},
    {"dir_trunc_fields", "truncation inside type/codec/ndim", c_dtrunc_fields},
    {"dir_trunc_dims", "truncation inside the dimensions", c_dtrunc_dims},
    {"dir_trunc_tail", "truncation inside offset/sizes/checksum", c_dtrunc_tail},
    /* verify */
    {"data_corrupt_header_ok", "checksums match only in the header and index", c_data_corrupt},
    {"checksum_field_forged", "tensor checksum changed, index checksum recomputed",
     c_checksum_field_forged},
    {"padding_nonzero", "non-zero padding byte", c_padding_nonzero},
    {"zstd_fcs_small", "frame declares fewer bytes than the tensor", c_zstd_fcs_small},
    {"zstd_content_short", "frame lies: declares the size, holds less", c_zstd_content_short},
    {"zstd_content_long", "frame lies: declares the size, holds more", c_zstd_content_long},
    {"zstd_no_fcs", "frame without a content size", c_zstd_no_fcs},
    {"zstd_window_2p28", "frame window over 2^27", c_zstd_window},
    {"zstd_dict", "frame needing a dictionary", c_zstd_dict},
    {"zstd_trailing", "bytes after the frame", c_zstd_trailing},
    {"zstd_truncated", "truncated frame", c_zstd_truncated},
    {"zstd_skippable", "skippable frame instead of data", c_zstd_skippable},
    {"zstd_two_bytes", "compressed tensor of 2 stored bytes", c_zstd_tiny},
    {"zstd_bad_block", "reserved block type", c_zstd_bad_block},
    {"zstd_bomb", "zstd bomb: 32 KiB frame expanding to 1 GiB, 4 KiB declared", c_zstd_bomb},
    {"zstd_bomb_single_segment", "zstd bomb, single segment", c_zstd_bomb_single},
    {"zstd_window_max_short", "largest window declared, far fewer bytes decoded",
     c_zstd_window_max_short},
    {"zstd_large_window_ok", "valid 16 MiB tensor in a 512-byte frame", c_zstd_large_valid},
};

size_t hostile_case_count(void) { return sizeof cases / sizeof cases[0]; }
const char *hostile_case_name(size_t i) { return i < hostile_case_count() ? cases[i].name : NULL; }

int hostile_case_make(const hostile_base *b, size_t i, hostile_file *out)
{
    memset(out, 0, sizeof *out);
    if (i >= hostile_case_count()) return -1;
    out->name = cases[i].name;
    out->what = cases[i].what;
    out->offset = HOSTILE_NO_OFFSET;
    if (cases[i].fn(b, out) != 0) {
        hostile_file_free(out);
        out->name = cases[i].name;
        return -1;
    }
    return 0;
}

void hostile_file_free(hostile_file *f)
{
    if (!f) return;
    free(f->buf);
    f->buf = NULL;
    f->size = 0;
}

static int write_bytes(const char *path, const uint8_t *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int rc = (n && fwrite(p, 1, n, f) != n) ? -1 : 0;
    if (fclose(f) != 0) rc = -1;
    return rc;
}

int hostile_write_corpus(const char *dir)
{
    char path[4096];
    mkdir(dir, 0777); /* may exist */
    snprintf(path, sizeof path, "%s/base.qfmt", dir);
    hostile_base *b = NULL;
    if (hostile_base_make(path, &b) != 0) return (int)hostile_case_count() + 1;
    snprintf(path, sizeof path, "%s/MANIFEST.txt", dir);
    FILE *man = fopen(path, "w");
    int bad = man ? 0 : 1;
    for (size_t i = 0; i < hostile_case_count(); i++) {
        hostile_file f;
        if (hostile_case_make(b, i, &f) != 0) {
            bad++;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s.qfmt", dir, f.name);
        if (write_bytes(path, f.buf, f.size) != 0) bad++;
        if (man) {
            if (f.offset == HOSTILE_NO_OFFSET)
                fprintf(man, "%s.qfmt\t-\t%s\n", f.name, f.what);
            else
                fprintf(man, "%s.qfmt\t%llu\t%s\n", f.name, (unsigned long long)f.offset, f.what);
        }
        hostile_file_free(&f);
    }
    if (man && fclose(man) != 0) bad++;
    hostile_base_free(b);
    return bad;
}
