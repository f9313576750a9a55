/* POSIX file access for the writer, through a table of system calls (SQLite's VFS in
 * miniature), and read-only mapping for the readers. */
#ifndef QFMT_INTERNAL_IO_H
#define QFMT_INTERNAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY
#endif
#include "qfmt.h"

/* Every system call the writer makes on its files, with POSIX conventions (-1 and errno on
 * failure, ssize_t byte counts, short writes allowed). A writer copies the table it is given
 * at creation; qfmt_writer_create gives qfmt__io_posix, the real calls. Tests give their own
 * to fail the n-th call (EIO, ENOSPC), shorten writes or interrupt them (EINTR). The library
 * keeps no mutable table: there is nothing global to patch. */
/* qfmt__io, qfmt__io_posix, qfmt__writer_create_io, qfmt__write_all, qfmt__create_temp,
 * qfmt__fsync, qfmt__fsync_parent: declared in qfmt.h (QFMT_STATIC_LINKING_ONLY). */

int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what);
void qfmt__unmap_file(const uint8_t *base, uint64_t size, int mapped);
/* Drops the whole pages inside [p, p+n) of a read-only mapping from memory. */
void qfmt__release_pages(const uint8_t *p, uint64_t n);

#endif
