/*
 * fuzz_checksums.h - recomputing a qfmt file's checksums in place, for the fuzz targets that
 * feed qfmt files (fuzz_reader, fuzz_model): checksums would stop nearly every mutation at
 * open, so those targets also run each input with them made right.
 */
#ifndef QFMT_FUZZ_CHECKSUMS_H
#define QFMT_FUZZ_CHECKSUMS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* header-only: the fuzz targets link no xxhash library */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "qfmt.h"
#include "fuzz_check.h"

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int k = 7; k >= 0; k--)
        v = (v << 8) | p[k];
    return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
    for (int k = 0; k < 8; k++)
        p[k] = (uint8_t)(v >> (8 * k));
}

/* Header_Checksum (bytes 0..55, stored at 56) and Index_Checksum (Metadata_Offset from the
 * footer up to File_Size - 16, stored there). Returns false if the bytes did not change. */
static bool fix_index_checksums(uint8_t *d, size_t n)
{
    if (n < 2 * QFMT_HEADER_SIZE)
        return false;
    uint64_t old_h = rd64(d + 56), old_i = rd64(d + n - 16);
    wr64(d + 56, XXH3_64bits(d, 56));
    uint64_t meta_off = rd64(d + n - QFMT_FOOTER_SIZE);
    if (meta_off <= n - 16)
        wr64(d + n - 16, XXH3_64bits(d + meta_off, n - 16 - (size_t)meta_off));
    return rd64(d + 56) != old_h || rd64(d + n - 16) != old_i;
}

/* Every directory entry's Checksum (its last 8 bytes) set to the XXH3 of the tensor's stored
 * bytes, then the index checksum again. Only for a file that opens. */
static bool fix_tensor_checksums(uint8_t *d, size_t n)
{
    qfmt_reader *r = NULL;
    if (qfmt_reader_open_memory(&r, d, n, NULL, NULL) != QFMT_OK)
        return false;
    qfmt_file_info fi;
    qfmt_reader_file_info(r, &fi);
    /* collect first: the bytes must not change while the reader is open */
    uint64_t *fix = malloc(fi.tensor_count * 2 * sizeof *fix + 1);
    size_t nfix = 0;
    uint64_t pos = fi.directory_offset;
    for (uint64_t i = 0; i < fi.tensor_count && fix != NULL; i++) {
        qfmt_tensor_info ti;
        CHECK(qfmt_tensor_get_info(r, i, &ti, NULL) == QFMT_OK);
        /* Name_Length u64 | Name | Type, Codec, NDim, Reserved u32 | Dims | 4 x u64 */
        pos += 8 + strlen(ti.name) + 16 + 8ull * ti.ndim + 32;
        CHECK(pos <= fi.directory_offset + fi.directory_size);
        uint64_t sum = XXH3_64bits(d + ti.offset, (size_t)ti.stored_size);
        if (sum != ti.checksum) {
            fix[nfix++] = pos - 8;
            fix[nfix++] = sum;
        }
    }
    qfmt_reader_close(r);
    for (size_t k = 0; k < nfix; k += 2)
        wr64(d + fix[k], fix[k + 1]);
    free(fix);
    if (nfix > 0)
        fix_index_checksums(d, n);
    return nfix > 0;
}

/* Runs fn on the input as given, then with the index checksums made right, then with every
 * tensor checksum made right too (each when it changed something). The input is copied to an
 * exactly-sized block aligned to `align` (a file is mapped at a page boundary, so views can be
 * aligned; libFuzzer's buffer is not): ASan still sees a read past `size`. */
static void fuzz_with_checksums_fixed(const uint8_t *data, size_t size, size_t align,
                                      void (*fn)(const uint8_t *, size_t))
{
    void *copy = NULL;
    if (posix_memalign(&copy, align, size ? size : 1) != 0)
        return;
    if (size > 0)
        memcpy(copy, data, size);
    fn(copy, size);
    if (fix_index_checksums(copy, size))
        fn(copy, size);
    if (fix_tensor_checksums(copy, size))
        fn(copy, size);
    free(copy);
}

#endif
