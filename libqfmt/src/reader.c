/* The reader: open (mmap or caller memory), validate header, footer, metadata and directory
 * before handing out anything, then zero-copy views and decoding of tensors.
 * Open costs O(metadata + directory); tensor bytes are touched only when asked for. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal/bytes.h"
#include "internal/checked.h"
#include "internal/checksum.h"
#include "internal/compress.h"
#include "internal/cursor.h"
#include "internal/error.h"
#include "internal/format.h"
#include "internal/io.h"
#include "internal/reader.h"
#include "internal/types.h"
#include "internal/utf8.h"

qfmt_status qfmt__rfail(const qfmt_reader *r, qfmt_error *err, qfmt_status code,
                        const char *tensor, uint64_t offset, const char *fmt, ...)
{
    if (!err) return code;
    char msg[sizeof err->message], safe[sizeof err->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    qfmt__escape_controls(msg, safe, sizeof safe);
    char name[sizeof err->tensor];
    if (tensor) qfmt__escape_controls(tensor, name, sizeof name);
    return qfmt__fail(err, code, 0, r ? r->path : NULL, tensor ? name : NULL, offset, "%s", safe);
}

/* The arena holds every key and name with its terminator: at most the index bytes + 1. Each
 * tensor costs its state and a by_name slot, each metadata entry its state and, for a string
 * array, at most as many index bytes as its elements take: with these the total stays within
 * (1 + 5) bytes per directory byte and (1 + 4 + 1) per metadata byte, + 1. */
_Static_assert(sizeof(qfmt__tensor) + sizeof(uint32_t) <= 5u * QFMT__MIN_DIR_ENTRY,
               "tensor state exceeds the open allocation bound");
_Static_assert(sizeof(qfmt__meta) <= 4u * QFMT__MIN_META_ENTRY,
               "metadata state exceeds the open allocation bound");
_Static_assert(sizeof(qfmt_reader) + 1 <= QFMT__OPEN_ALLOC_BASE,
               "reader exceeds the open allocation bound");

qfmt_status qfmt__ralloc(qfmt_reader *r, uint64_t n, size_t size, void **out)
{
    uint64_t bytes;
    *out = NULL;
    if (!qfmt__mul_u64(n ? n : 1, size, &bytes) || bytes > r->budget) return QFMT_E_RANGE;
    *out = qfmt__calloc_array(&r->al, n ? n : 1, size);
    if (!*out) return QFMT_E_NOMEM;
    r->budget -= bytes;
    return QFMT_OK;
}

/* Turns a qfmt__ralloc failure into the error reported by open. */
static qfmt_status ralloc_fail(const qfmt_reader *r, qfmt_error *err, qfmt_status s, uint64_t n,
                               const char *what)
{
    if (s == QFMT_E_NOMEM)
        return qfmt__rfail(r, err, s, NULL, QFMT_NO_OFFSET, "cannot allocate %s (%" PRIu64 ")",
                           what, n);
    return qfmt__rfail(r, err, s, NULL, QFMT_NO_OFFSET,
                       "%s (%" PRIu64 ") exceed the allocation bound of open", what, n);
}

static qfmt_status parse_header(qfmt_reader *r, qfmt_error *err)
{
    const uint8_t *h = r->base;
    if (r->size < QFMT_HEADER_SIZE + QFMT_FOOTER_SIZE) {
        if (r->size >= 8 && memcmp(h, qfmt__magic, 8) != 0)
            return qfmt__rfail(r, err, QFMT_E_BAD_MAGIC, NULL, 0, "not a qfmt file (bad magic)");
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, r->size,
                           "file of %" PRIu64 " bytes is shorter than header and footer (%u)",
                           r->size, QFMT_HEADER_SIZE + QFMT_FOOTER_SIZE);
    }
    if (memcmp(h, qfmt__magic, 8) != 0)
        return qfmt__rfail(r, err, QFMT_E_BAD_MAGIC, NULL, 0, "not a qfmt file (bad magic)");
    qfmt_file_info *in = &r->info;
    in->version_major = qfmt__rd16(h + QFMT__H_MAJOR);
    in->version_minor = qfmt__rd16(h + QFMT__H_MINOR);
    /* The major is checked before the checksum: another major may lay out its header anew. */
    if (in->version_major != QFMT_FORMAT_VERSION_MAJOR)
        return qfmt__rfail(r, err, QFMT_E_VERSION, NULL, QFMT__H_MAJOR,
                           "format version %u.%u: this reader reads major version %d only",
                           in->version_major, in->version_minor, QFMT_FORMAT_VERSION_MAJOR);
    in->header_checksum = qfmt__rd64(h + QFMT__H_CHECKSUM);
    uint64_t sum = qfmt__xxh3(h, QFMT__H_CHECKSUM);
    if (sum != in->header_checksum)
        return qfmt__rfail(r, err, QFMT_E_CHECKSUM, NULL, QFMT__H_CHECKSUM,
                           "header checksum %016" PRIx64 " does not match its bytes (%016" PRIx64
                           ")",
                           in->header_checksum, sum);
    in->required_features = qfmt__rd32(h + QFMT__H_REQUIRED);
    in->optional_features = qfmt__rd32(h + QFMT__H_OPTIONAL);
    if (in->required_features != 0)
        return qfmt__rfail(r, err, QFMT_E_VERSION, NULL, QFMT__H_REQUIRED,
                           "file requires features 0x%08" PRIx32 " this reader does not know",
                           in->required_features);
    in->alignment = qfmt__rd32(h + QFMT__H_ALIGNMENT);
    if (!qfmt__is_pow2(in->alignment) || in->alignment < QFMT_MIN_ALIGNMENT ||
        in->alignment > QFMT_MAX_ALIGNMENT)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, QFMT__H_ALIGNMENT,
                           "alignment %" PRIu32 " is not a power of two in %u..%u", in->alignment,
                           QFMT_MIN_ALIGNMENT, QFMT_MAX_ALIGNMENT);
    for (unsigned i = QFMT__H_RESERVED; i < QFMT__H_CHECKSUM; i++)
        if (h[i] != 0)
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, i, "reserved header byte is not zero");
    return QFMT_OK;
}

static qfmt_status parse_footer(qfmt_reader *r, qfmt_error *err)
{
    qfmt_file_info *in = &r->info;
    uint64_t foff = r->size - QFMT_FOOTER_SIZE;
    const uint8_t *f = r->base + foff;
    if (memcmp(f + QFMT__F_END_MAGIC, qfmt__end_magic, 8) != 0)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_END_MAGIC,
                           "no footer at the end: the file is truncated or incomplete");
    in->metadata_offset = qfmt__rd64(f + QFMT__F_META_OFFSET);
    in->metadata_size = qfmt__rd64(f + QFMT__F_META_SIZE);
    in->directory_size = qfmt__rd64(f + QFMT__F_DIR_SIZE);
    in->metadata_count = qfmt__rd64(f + QFMT__F_META_COUNT);
    in->tensor_count = qfmt__rd64(f + QFMT__F_TENSOR_COUNT);
    in->index_checksum = qfmt__rd64(f + QFMT__F_CHECKSUM);
    in->file_size = r->size;
    uint64_t data_start = 0, end;
    qfmt__align_up(QFMT_HEADER_SIZE, in->alignment, &data_start); /* small: cannot fail */
    in->data_offset = data_start;
    if (in->metadata_offset < data_start || in->metadata_offset % in->alignment)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_META_OFFSET,
                           "metadata offset %" PRIu64 " is not an aligned offset after the header",
                           in->metadata_offset);
    if (in->metadata_size > QFMT_MAX_META_SIZE)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_META_SIZE,
                           "metadata (%" PRIu64 " bytes) exceeds the limit of %llu bytes",
                           in->metadata_size, QFMT_MAX_META_SIZE);
    if (in->directory_size > QFMT_MAX_DIRECTORY_SIZE)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_DIR_SIZE,
                           "directory (%" PRIu64 " bytes) exceeds the limit of %llu bytes",
                           in->directory_size, QFMT_MAX_DIRECTORY_SIZE);
    if (!qfmt__add_u64(in->metadata_offset, in->metadata_size, &end) ||
        !qfmt__add_u64(end, in->directory_size, &end) || end != foff)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff,
                           "footer sections (metadata at %" PRIu64 ", %" PRIu64
                           " + %" PRIu64 " bytes) do not end at the footer (byte %" PRIu64 ")",
                           in->metadata_offset, in->metadata_size, in->directory_size, foff);
    if (qfmt__rd64(f + QFMT__F_RESERVED) != 0)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_RESERVED,
                           "reserved footer field is not zero");
    uint64_t sum = qfmt__xxh3(r->base + in->metadata_offset,
                              (size_t)(r->size - 16 - in->metadata_offset));
    if (sum != in->index_checksum)
        return qfmt__rfail(r, err, QFMT_E_CHECKSUM, NULL, foff + QFMT__F_CHECKSUM,
                           "index checksum %016" PRIx64 " does not match metadata, directory and "
                           "footer (%016" PRIx64 ")",
                           in->index_checksum, sum);
    /* Counts are bounded by the smallest entry before anything is allocated for them. */
    if (in->metadata_count > QFMT_MAX_META_ENTRIES ||
        in->metadata_count > in->metadata_size / QFMT__MIN_META_ENTRY)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_META_COUNT,
                           "%" PRIu64 " metadata entries cannot fit in %" PRIu64 " bytes",
                           in->metadata_count, in->metadata_size);
    if (in->tensor_count > QFMT_MAX_TENSORS ||
        in->tensor_count > in->directory_size / QFMT__MIN_DIR_ENTRY)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, foff + QFMT__F_TENSOR_COUNT,
                           "%" PRIu64 " tensors cannot fit in a directory of %" PRIu64 " bytes",
                           in->tensor_count, in->directory_size);
    in->directory_offset = in->metadata_offset + in->metadata_size;
    in->data_size = in->metadata_offset - data_start;
    return QFMT_OK;
}

static qfmt_status parse_entry(qfmt_reader *r, qfmt__cur *c, uint64_t i, uint64_t *expect_off,
                               char **arena_pos, qfmt_error *err)
{
    qfmt__tensor *t = &r->tensors[i];
    uint64_t at = c->pos, nlen;
    t->entry_offset = at;
    if (!qfmt__cur_u64(c, &nlen))
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at,
                           "directory entry %" PRIu64 " is truncated (name length)", i);
    if (nlen == 0 || nlen > QFMT_MAX_NAME_LEN)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at,
                           "directory entry %" PRIu64 ": name length %" PRIu64 " is outside 1..%u",
                           i, nlen, QFMT_MAX_NAME_LEN);
    const uint8_t *name = qfmt__cur_take(c, nlen);
    if (!name)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at + 8,
                           "directory entry %" PRIu64 " is truncated (name)", i);
    if (!qfmt_utf8_valid(name, nlen, false))
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, at + 8,
                           "directory entry %" PRIu64 ": name is not valid UTF-8 or has a NUL", i);
    memcpy(*arena_pos, name, nlen);
    (*arena_pos)[nlen] = '\0';
    t->name = *arena_pos;
    t->name_len = (uint32_t)nlen;
    *arena_pos += nlen + 1;
    const char *nm = t->name;
    uint32_t reserved;
    uint64_t fields_at = c->pos;
    if (!qfmt__cur_u32(c, &t->type) || !qfmt__cur_u32(c, &t->codec) || !qfmt__cur_u32(c, &t->ndim) ||
        !qfmt__cur_u32(c, &reserved))
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, fields_at, "directory entry is truncated");
    if (t->ndim > QFMT_MAX_DIMS)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, fields_at + 8,
                           "%" PRIu32 " dimensions, at most %u allowed", t->ndim, QFMT_MAX_DIMS);
    if (reserved != 0)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, fields_at + 12,
                           "reserved directory field is not zero");
    uint64_t dims_at = c->pos;
    for (uint32_t d = 0; d < t->ndim; d++)
        if (!qfmt__cur_u64(c, &t->dims[d]))
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, dims_at, "directory entry is truncated (dims)");
    uint64_t tail_at = c->pos;
    if (!qfmt__cur_u64(c, &t->offset) || !qfmt__cur_u64(c, &t->stored) ||
        !qfmt__cur_u64(c, &t->raw) || !qfmt__cur_u64(c, &t->checksum))
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, tail_at, "directory entry is truncated");
    if (!qfmt__count_elements(t->ndim, t->dims, &t->nelements))
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, dims_at,
                           "dimensions multiply past the limit of 2^56 elements");
    uint64_t want;
    qfmt_status s = qfmt__tensor_bytes(t->type, t->ndim, t->dims, &t->nelements, &want);
    if (s == QFMT_E_RANGE)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, dims_at,
                           "dimensions do not fit type %s (size overflows or partial block)",
                           qfmt_type_get_traits(t->type)->name);
    if (s == QFMT_OK && t->raw != want)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, tail_at + 16,
                           "raw size %" PRIu64 " bytes, but %" PRIu64 " elements of %s take %" PRIu64,
                           t->raw, t->nelements, qfmt_type_get_traits(t->type)->name, want);
    if (t->codec == QFMT_CODEC_NONE && t->stored != t->raw)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, tail_at + 8,
                           "uncompressed tensor stores %" PRIu64 " bytes but its raw size is %" PRIu64,
                           t->stored, t->raw);
    if (t->codec == QFMT_CODEC_ZSTD && t->raw == 0)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, fields_at + 4,
                           "an empty tensor cannot be zstd-compressed");
    if (t->offset != *expect_off)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, tail_at,
                           "data offset %" PRIu64 ", but the layout puts it at %" PRIu64,
                           t->offset, *expect_off);
    uint64_t end;
    if (!qfmt__add_u64(t->offset, t->stored, &end) || end > r->info.metadata_offset)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, nm, tail_at + 8,
                           "%" PRIu64 " bytes at %" PRIu64 " run past the data region (ends at %" PRIu64 ")",
                           t->stored, t->offset, r->info.metadata_offset);
    qfmt__align_up(end, r->info.alignment, expect_off); /* <= metadata_offset: cannot wrap */
    return QFMT_OK;
}

/* Heapsort of tensor indexes by name: O(n log n) whatever the names, no allocation. */
static int name_cmp(const qfmt_reader *r, uint32_t a, uint32_t b)
{
    const qfmt__tensor *x = &r->tensors[a], *y = &r->tensors[b];
    uint32_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    return x->name_len < y->name_len ? -1 : x->name_len > y->name_len;
}
static void sift(const qfmt_reader *r, uint32_t *a, uint64_t i, uint64_t n)
{
    for (;;) {
        uint64_t big = i, l = 2 * i + 1, rr = l + 1;
        if (l < n && name_cmp(r, a[l], a[big]) > 0) big = l;
        if (rr < n && name_cmp(r, a[rr], a[big]) > 0) big = rr;
        if (big == i) return;
        uint32_t t = a[i];
        a[i] = a[big];
        a[big] = t;
        i = big;
    }
}
static void sort_names(const qfmt_reader *r, uint32_t *a, uint64_t n)
{
    for (uint64_t i = n / 2; i-- > 0;) sift(r, a, i, n);
    for (uint64_t end = n; end > 1; end--) {
        uint32_t t = a[0];
        a[0] = a[end - 1];
        a[end - 1] = t;
        sift(r, a, 0, end - 1);
    }
}

static qfmt_status parse_directory(qfmt_reader *r, char **arena_pos, qfmt_error *err)
{
    uint64_t n = r->info.tensor_count;
    qfmt__cur c = {r->base, r->info.directory_offset,
                   r->info.directory_offset + r->info.directory_size};
    uint64_t expect = r->info.data_offset;
    if (n) {
        void *t = NULL, *b = NULL;
        qfmt_status s = qfmt__ralloc(r, n, sizeof *r->tensors, &t);
        r->tensors = t;
        if (s == QFMT_OK) s = qfmt__ralloc(r, n, sizeof *r->by_name, &b);
        r->by_name = b;
        if (s != QFMT_OK) return ralloc_fail(r, err, s, n, "directory entries");
    }
    for (uint64_t i = 0; i < n; i++) {
        qfmt_status s = parse_entry(r, &c, i, &expect, arena_pos, err);
        if (s != QFMT_OK) return s;
        r->by_name[i] = (uint32_t)i;
    }
    if (c.pos != c.end)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, c.pos,
                           "%" PRIu64 " bytes left in the directory after %" PRIu64 " entries",
                           c.end - c.pos, n);
    if (expect != r->info.metadata_offset)
        return qfmt__rfail(r, err, QFMT_E_CORRUPT, NULL, r->size - QFMT_FOOTER_SIZE,
                           "metadata starts at %" PRIu64 ", but the tensor data ends at %" PRIu64,
                           r->info.metadata_offset, expect);
    sort_names(r, r->by_name, n);
    for (uint64_t i = 1; i < n; i++)
        if (name_cmp(r, r->by_name[i - 1], r->by_name[i]) == 0) {
            /* heapsort is not stable: name the later entry in file order, whichever this is */
            uint32_t a = r->by_name[i - 1], b = r->by_name[i];
            const qfmt__tensor *t = &r->tensors[a > b ? a : b];
            return qfmt__rfail(r, err, QFMT_E_CORRUPT, t->name, t->entry_offset,
                               "tensor name appears more than once");
        }
    return QFMT_OK;
}

static qfmt_status open_common(qfmt_reader *r, const qfmt_open_opts *opts, qfmt_error *err)
{
    qfmt_status s = parse_header(r, err);
    if (s == QFMT_OK) s = parse_footer(r, err);
    if (s != QFMT_OK) return s;
    /* From here on, every allocation is charged to the budget of the spec's bound; the
     * footer's sizes are checked (<= 2^30 each, inside the file), so this cannot overflow. */
    r->budget = QFMT__OPEN_ALLOC_FACTOR * (r->info.metadata_size + r->info.directory_size) +
                (QFMT__OPEN_ALLOC_BASE - sizeof *r);
    /* Every key and name, with its terminator, is shorter than its entry: the sections' size
     * bounds the arena. */
    uint64_t arena_size = r->info.metadata_size + r->info.directory_size + 1;
    void *arena = NULL;
    s = qfmt__ralloc(r, arena_size, 1, &arena);
    r->arena = arena;
    if (s != QFMT_OK) return ralloc_fail(r, err, s, arena_size, "bytes for names");
    char *pos = r->arena;
    s = qfmt__meta_parse(r, &pos, err);
    if (s == QFMT_OK) s = parse_directory(r, &pos, err);
    if (s == QFMT_OK && opts && opts->verify_checksums) s = qfmt_reader_verify(r, 1, err);
    return s;
}

static qfmt_reader *new_reader(const qfmt_open_opts *opts, const char *path)
{
    qfmt__alloc al;
    qfmt__alloc_init(&al, opts ? opts->alloc : NULL);
    qfmt_reader *r = qfmt__malloc(&al, sizeof *r);
    if (!r) return NULL;
    memset(r, 0, sizeof *r);
    r->al = al;
    r->path = qfmt__strndup(&al, path, strlen(path));
    if (!r->path) {
        qfmt__free(&al, r);
        return NULL;
    }
    return r;
}

qfmt_status qfmt_reader_open_memory(qfmt_reader **out, const void *data, size_t size,
                                    const qfmt_open_opts *opts, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL out");
    *out = NULL;
    if (!data && size)
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL data");
    if (opts && !QFMT__RESERVED_ZERO(opts))
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "qfmt_open_opts: reserved fields must be zero (start from QFMT_OPEN_OPTS_INIT)");
    qfmt_reader *r = new_reader(opts, "");
    if (!r)
        return qfmt__fail(err, QFMT_E_NOMEM, 0, NULL, NULL, QFMT_NO_OFFSET,
                          "cannot allocate the reader");
    r->base = data;
    r->size = size;
    qfmt_status s = open_common(r, opts, err);
    if (s != QFMT_OK) {
        qfmt_reader_close(r);
        return s;
    }
    *out = r;
    return QFMT_OK;
}

qfmt_status qfmt_reader_open(qfmt_reader **out, const char *path, const qfmt_open_opts *opts,
                             qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!out || !path)
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL argument");
    *out = NULL;
    if (opts && !QFMT__RESERVED_ZERO(opts))
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET,
                          "qfmt_open_opts: reserved fields must be zero (start from QFMT_OPEN_OPTS_INIT)");
    qfmt_reader *r = new_reader(opts, path);
    if (!r)
        return qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET,
                          "cannot allocate the reader");
    const char *what = "";
    int mapped = 0;
    int e = qfmt__map_file(path, &r->base, &r->size, &mapped, &what);
    r->mapped = mapped != 0;
    if (e) {
        qfmt_status s = qfmt__open_fail(err, path, e, what);
        qfmt_reader_close(r);
        return s;
    }
    qfmt_status s = open_common(r, opts, err);
    if (s != QFMT_OK) {
        qfmt_reader_close(r);
        return s;
    }
    *out = r;
    return QFMT_OK;
}

void qfmt_reader_close(qfmt_reader *r)
{
    if (!r) return;
    qfmt__alloc al = r->al;
    qfmt__unmap_file(r->base, r->size, r->mapped);
    qfmt__meta_free(r);
    qfmt__free(&al, r->tensors);
    qfmt__free(&al, r->by_name);
    qfmt__free(&al, r->arena);
    qfmt__free(&al, r->path);
    qfmt__free(&al, r);
}

void qfmt_reader_file_info(const qfmt_reader *r, qfmt_file_info *out)
{
    if (!out) return;
    if (!r) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = r->info;
    memset(out->reserved, 0, sizeof out->reserved);
}

const char *qfmt_reader_path(const qfmt_reader *r) { return r ? r->path : ""; }

/* ---- Tensors --------------------------------------------------------------------------- */

uint64_t qfmt_tensor_count(const qfmt_reader *r) { return r ? r->info.tensor_count : 0; }

static qfmt_status get_tensor(const qfmt_reader *r, uint64_t index, const qfmt__tensor **t,
                              qfmt_error *err)
{
    if (!r) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL reader");
    if (index >= r->info.tensor_count)
        return qfmt__rfail(r, err, QFMT_E_RANGE, NULL, QFMT_NO_OFFSET,
                           "tensor index %" PRIu64 " out of range (%" PRIu64 " tensors)", index,
                           r->info.tensor_count);
    *t = &r->tensors[index];
    return QFMT_OK;
}

qfmt_status qfmt_tensor_get_info(const qfmt_reader *r, uint64_t index, qfmt_tensor_info *out,
                                 qfmt_error *err)
{
    const qfmt__tensor *t = NULL;
    qfmt_status s = get_tensor(r, index, &t, err);
    if (s != QFMT_OK || !out) return s;
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->type = t->type;
    out->codec = t->codec;
    out->ndim = t->ndim;
    memcpy(out->dims, t->dims, sizeof out->dims);
    out->nelements = t->nelements;
    out->offset = t->offset;
    out->stored_size = t->stored;
    out->raw_size = t->raw;
    out->checksum = t->checksum;
    return QFMT_OK;
}

qfmt_status qfmt_tensor_find(const qfmt_reader *r, const char *name, uint64_t *index,
                             qfmt_error *err)
{
    if (!r || !name)
        return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL argument");
    size_t nl = strlen(name);
    uint64_t lo = 0, hi = r->info.tensor_count;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        const qfmt__tensor *t = &r->tensors[r->by_name[mid]];
        int c = memcmp(t->name, name, t->name_len < nl ? t->name_len : nl);
        if (c == 0) c = t->name_len < nl ? -1 : t->name_len > nl;
        if (c == 0) {
            if (index) *index = r->by_name[mid];
            return QFMT_OK;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return qfmt__rfail(r, err, QFMT_E_NOT_FOUND, name, QFMT_NO_OFFSET, "no such tensor");
}

static qfmt_status check_readable(const qfmt_reader *r, const qfmt__tensor *t, qfmt_error *err)
{
    if (!qfmt_type_get_traits(t->type))
        return qfmt__rfail(r, err, QFMT_E_UNSUPPORTED, t->name, t->entry_offset,
                           "tensor type %" PRIu32 " is unknown to this reader", t->type);
    if (t->codec != QFMT_CODEC_NONE && t->codec != QFMT_CODEC_ZSTD)
        return qfmt__rfail(r, err, QFMT_E_UNSUPPORTED, t->name, t->entry_offset,
                           "codec %" PRIu32 " is unknown to this reader", t->codec);
    return QFMT_OK;
}

qfmt_status qfmt_tensor_view(const qfmt_reader *r, uint64_t index, const void **data,
                             uint64_t *size, qfmt_error *err)
{
    const qfmt__tensor *t = NULL;
    qfmt_status s = get_tensor(r, index, &t, err);
    if (s == QFMT_OK) s = check_readable(r, t, err);
    if (s != QFMT_OK) return s;
    if (t->codec != QFMT_CODEC_NONE)
        return qfmt__rfail(r, err, QFMT_E_UNSUPPORTED, t->name, t->offset,
                           "tensor is compressed: read it with qfmt_tensor_read");
    if (data) *data = r->base + t->offset;
    if (size) *size = t->raw;
    return QFMT_OK;
}

qfmt_status qfmt_tensor_verify(const qfmt_reader *r, uint64_t index, qfmt_error *err)
{
    const qfmt__tensor *t = NULL;
    qfmt_status s = get_tensor(r, index, &t, err);
    if (s != QFMT_OK) return s;
    const uint8_t *p = r->base + t->offset;
    uint64_t sum = qfmt__xxh3(p, (size_t)t->stored);
    if (sum != t->checksum)
        return qfmt__rfail(r, err, QFMT_E_CHECKSUM, t->name, t->offset,
                           "checksum of %" PRIu64 " stored bytes is %016" PRIx64
                           ", directory says %016" PRIx64,
                           t->stored, sum, t->checksum);
    if (t->codec == QFMT_CODEC_ZSTD) {
        const char *why = "";
        s = qfmt__zstd_validate(&r->al, p, t->stored, t->raw, &why);
        if (s != QFMT_OK) return qfmt__rfail(r, err, s, t->name, t->offset, "%s", why);
    }
    return QFMT_OK;
}

qfmt_status qfmt_tensor_read(const qfmt_reader *r, uint64_t index, void *dst, uint64_t dst_size,
                             bool verify, qfmt_error *err)
{
    const qfmt__tensor *t = NULL;
    qfmt_status s = get_tensor(r, index, &t, err);
    if (s == QFMT_OK) s = check_readable(r, t, err);
    if (s != QFMT_OK) return s;
    if (dst_size != t->raw || (!dst && t->raw))
        return qfmt__rfail(r, err, QFMT_E_ARG, t->name, QFMT_NO_OFFSET,
                           "destination holds %" PRIu64 " bytes, the tensor needs %" PRIu64,
                           dst_size, t->raw);
    const uint8_t *p = r->base + t->offset;
    if (verify) {
        uint64_t sum = qfmt__xxh3(p, (size_t)t->stored);
        if (sum != t->checksum)
            return qfmt__rfail(r, err, QFMT_E_CHECKSUM, t->name, t->offset,
                               "checksum of %" PRIu64 " stored bytes is %016" PRIx64
                               ", directory says %016" PRIx64,
                               t->stored, sum, t->checksum);
    }
    if (t->codec == QFMT_CODEC_NONE) {
        if (t->raw) memcpy(dst, p, (size_t)t->raw);
        return QFMT_OK;
    }
    const char *why = "";
    s = qfmt__zstd_decode(&r->al, p, t->stored, dst, t->raw, &why);
    if (s != QFMT_OK) return qfmt__rfail(r, err, s, t->name, t->offset, "%s", why);
    return QFMT_OK;
}
