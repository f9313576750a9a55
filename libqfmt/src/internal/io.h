/* POSIX file access for the writer, through a table of system calls (SQLite's VFS in
 * miniature), and read-only mapping for the readers. */
#ifndef QFMT_INTERNAL_IO_H
#define QFMT_INTERNAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef QFMT_STATIC_LINKING_ONLY
#define QFMT_STATIC_LINKING_ONLY /* qfmt_io, qfmt_io_posix, qfmt_writer_create_io */
#endif
#include "qfmt.h"

/* The table of system calls every writer goes through is qfmt.h's qfmt_io (static-linking
 * section): qfmt_io_posix gives the real calls, tests give their own. */

/* Writes all n bytes, retrying short writes and EINTR. 0, or an errno (EIO when a write
 * makes no progress); *written says how many bytes went out either way. */
int qfmt__write_all(const qfmt_io *io, int fd, const void *p, size_t n, size_t *written);
/* Creates "<path>.tmp.XXXXXX" exclusively, mode 0666 less the umask. Returns the fd and
 * fills tmp (capacity tmp_cap), or -1 with errno set. */
int qfmt__create_temp(const qfmt_io *io, const char *path, char *tmp, size_t tmp_cap,
                      uint64_t seed);
/* fsync, retried on EINTR. 0, or an errno. */
int qfmt__fsync(const qfmt_io *io, int fd);
/* fsyncs the directory holding `path`, making a rename in it durable. 0, or an errno. */
int qfmt__fsync_parent(const qfmt_io *io, const char *path);

/* Opens `path` read-only if it is a regular file, without ever blocking in open(): a FIFO or
 * a device is opened with O_NONBLOCK, seen by fstat and refused (EINVAL, EISDIR for a
 * directory) before anything reads it. Every libqfmt open of a caller-named file for reading
 * goes through here. Returns 0 with *fd (O_CLOEXEC, blocking again) and *size (if not NULL),
 * or an errno with *what naming the failed step ("not a regular file (a FIFO)"). */
int qfmt__open_regular(const char *path, int *fd, uint64_t *size, const char **what);

/* Records the failure of qfmt__open_regular or qfmt__map_file: QFMT_E_IO, "what: strerror",
 * or just what for a file that is not regular. Returns QFMT_E_IO. */
qfmt_status qfmt__open_fail(qfmt_error *err, const char *path, int e, const char *what);

/* Maps a regular file read-only (opened by qfmt__open_regular). On success *base and *size describe it (an empty file maps to
 * a static empty buffer) and *mapped says whether munmap is due. Returns 0, or an errno with
 * *what naming the failed step. */
int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what);
void qfmt__unmap_file(const uint8_t *base, uint64_t size, int mapped);
/* Drops the whole pages inside [p, p+n) of a read-only mapping from memory. */
void qfmt__release_pages(const uint8_t *p, uint64_t n);

#endif
