/* POSIX file access for the writer, through a table of system calls (SQLite's VFS in
 * miniature), and read-only mapping for the readers. */
#ifndef QFMT_INTERNAL_IO_H
#define QFMT_INTERNAL_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "qfmt.h"

/* Every system call the writer makes on its files, with POSIX conventions (-1 and errno on
 * failure, ssize_t byte counts, short writes allowed). A writer copies the table it is given
 * at creation; qfmt_writer_create gives qfmt__io_posix, the real calls. Tests give their own
 * to fail the n-th call (EIO, ENOSPC), shorten writes or interrupt them (EINTR). The library
 * keeps no mutable table: there is nothing global to patch. */
typedef struct qfmt__io {
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    ssize_t (*write)(void *ctx, int fd, const void *p, size_t n);
    int (*fsync)(void *ctx, int fd);
    int (*close)(void *ctx, int fd);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    void *ctx; /* passed to every call */
} qfmt__io;

extern const qfmt__io qfmt__io_posix;

/* qfmt_writer_create doing its file I/O through `io` (NULL: qfmt__io_posix). The table is
 * copied; io->ctx must stay valid until qfmt_writer_free. Not exported from the shared
 * library: reached by linking the static one (tests, fuzzers). */
qfmt_status qfmt__writer_create_io(qfmt_writer **out, const char *path, const qfmt_write_opts *opts,
                                   const qfmt__io *io, qfmt_error *err);

/* Writes all n bytes, retrying short writes and EINTR. 0, or an errno (EIO when a write
 * makes no progress); *written says how many bytes went out either way. */
int qfmt__write_all(const qfmt__io *io, int fd, const void *p, size_t n, size_t *written);
/* Creates "<path>.tmp.XXXXXX" exclusively, mode 0666 less the umask. Returns the fd and
 * fills tmp (capacity tmp_cap), or -1 with errno set. */
int qfmt__create_temp(const qfmt__io *io, const char *path, char *tmp, size_t tmp_cap,
                      uint64_t seed);
/* fsync, retried on EINTR. 0, or an errno. */
int qfmt__fsync(const qfmt__io *io, int fd);
/* fsyncs the directory holding `path`, making a rename in it durable. 0, or an errno. */
int qfmt__fsync_parent(const qfmt__io *io, const char *path);

/* Maps a regular file read-only. On success *base and *size describe it (an empty file maps to
 * a static empty buffer) and *mapped says whether munmap is due. Returns 0, or an errno with
 * *what naming the failed step. */
int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what);
void qfmt__unmap_file(const uint8_t *base, uint64_t size, int mapped);
/* Drops the whole pages inside [p, p+n) of a read-only mapping from memory. */
void qfmt__release_pages(const uint8_t *p, uint64_t n);

#endif
