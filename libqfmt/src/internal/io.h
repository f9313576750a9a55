/* POSIX file writing for the writer: every write completes or reports errno. */
#ifndef QFMT_INTERNAL_IO_H
#define QFMT_INTERNAL_IO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all n bytes, retrying short writes and EINTR. 0, or an errno. */
int qfmt__write_all(int fd, const void *p, size_t n);
/* Creates "<path>.tmp.XXXXXX" exclusively, mode 0666 less the umask. Returns the fd and
 * fills tmp (capacity tmp_cap), or -1 with errno set. */
int qfmt__create_temp(const char *path, char *tmp, size_t tmp_cap, uint64_t seed);
/* fsyncs the directory holding `path`, making a rename in it durable. 0, or an errno. */
int qfmt__fsync_parent(const char *path);

/* Maps a regular file read-only. On success *base and *size describe it (an empty file maps to
 * a static empty buffer) and *mapped says whether munmap is due. Returns 0, or an errno with
 * *what naming the failed step. */
int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what);
void qfmt__unmap_file(const uint8_t *base, uint64_t size, int mapped);
/* Drops the whole pages inside [p, p+n) of a read-only mapping from memory. */
void qfmt__release_pages(const uint8_t *p, uint64_t n);

#endif
