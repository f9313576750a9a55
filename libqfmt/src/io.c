#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE /* madvise: glibc makes posix_madvise(DONTNEED) a no-op */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal/checksum.h"
#include "internal/error.h"
#include "internal/io.h"

static int posix_open(void *ctx, const char *path, int flags, mode_t mode)
{
    (void)ctx;
    return open(path, flags, mode);
}
static ssize_t posix_write(void *ctx, int fd, const void *p, size_t n)
{
    (void)ctx;
    return write(fd, p, n);
}
static int posix_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd);
}
static int posix_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd);
}
static int posix_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to);
}
static int posix_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path);
}

const qfmt_io qfmt_io_posix = {posix_open,  posix_write,  posix_fsync, posix_close,
                                 posix_rename, posix_unlink, NULL};

int qfmt__write_all(const qfmt_io *io, int fd, const void *p, size_t n, size_t *written)
{
    const char *c = p;
    *written = 0;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t k = io->write(io->ctx, fd, c, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno ? errno : EIO;
        }
        if (k == 0 || (size_t)k > chunk) return EIO; /* no progress, or nonsense: stop */
        c += k;
        n -= (size_t)k;
        *written += (size_t)k;
    }
    return 0;
}

int qfmt__create_temp(const qfmt_io *io, const char *path, char *tmp, size_t tmp_cap,
                      uint64_t seed)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = seed ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    if (!x) x = 0x9E3779B97F4A7C15ull; /* xorshift stays at 0 forever */
    for (int attempt = 0; attempt < 100; attempt++) {
        char suffix[7];
        for (int i = 0; i < 6; i++) {
            x ^= x << 13; /* xorshift64: names only need to differ, not to be secret */
            x ^= x >> 7;
            x ^= x << 17;
            suffix[i] = alphabet[x % (sizeof alphabet - 1)];
        }
        suffix[6] = '\0';
        int k = snprintf(tmp, tmp_cap, "%s.tmp.%s", path, suffix);
        if (k < 0 || (size_t)k >= tmp_cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd;
        do fd = io->open(io->ctx, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

int qfmt__fsync(const qfmt_io *io, int fd)
{
    for (;;) {
        if (io->fsync(io->ctx, fd) == 0) return 0;
        /* EINTR: interrupted before it finished, nothing reported lost: again. Any other error
         * is final (a retried fsync may "succeed" with the pages already dropped). */
        if (errno != EINTR) return errno ? errno : EIO;
    }
}

int qfmt__fsync_parent(const qfmt_io *io, const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof dir) return ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd;
    do fd = io->open(io->ctx, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) return errno ? errno : EIO;
    int rc = qfmt__fsync(io, fd);
    io->close(io->ctx, fd); /* read-only: closing it cannot lose anything */
    /* Some filesystems refuse fsync on directories; the rename has happened all the same. */
    return rc == EINVAL ? 0 : rc;
}

/* What a non-regular file is, for the message refusing it. */
static const char *kind_of(mode_t m)
{
    if (S_ISDIR(m)) return "not a regular file (a directory)";
    if (S_ISFIFO(m)) return "not a regular file (a FIFO)";
    if (S_ISCHR(m)) return "not a regular file (a character device)";
    if (S_ISBLK(m)) return "not a regular file (a block device)";
    if (S_ISSOCK(m)) return "not a regular file (a socket)";
    return "not a regular file";
}

int qfmt__open_regular(const char *path, int *fd_out, uint64_t *size, const char **what)
{
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO (or a tty, a tape...) for reading would otherwise wait for a
     * writer before fstat could refuse it; O_NOCTTY: a terminal never becomes ours. */
    int fd;
    do fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        *what = "cannot open";
        return errno ? errno : EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        *what = "cannot stat";
        return e;
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        *what = kind_of(st.st_mode);
        return S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) { /* reads block as usual again */
        int e = errno;
        close(fd);
        *what = "cannot clear O_NONBLOCK";
        return e;
    }
    if (size) *size = (uint64_t)st.st_size;
    *fd_out = fd;
    return 0;
}

qfmt_status qfmt_file_open_read(const char *path, int *fd, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (fd) *fd = -1;
    if (!path || !fd) {
        errno = EINVAL;
        return qfmt__fail(err, QFMT_E_ARG, 0, path, NULL, QFMT_NO_OFFSET, "NULL argument");
    }
    const char *what = "";
    int e = qfmt__open_regular(path, fd, NULL, &what);
    if (e) {
        qfmt__open_fail(err, path, e, what);
        errno = e;
        return QFMT_E_IO;
    }
    return QFMT_OK;
}

qfmt_status qfmt__open_fail(qfmt_error *err, const char *path, int e, const char *what)
{
    if (strncmp(what, "not a regular file", 18) == 0) /* says it all: no strerror(EINVAL) */
        return qfmt__fail(err, QFMT_E_IO, e, path, NULL, QFMT_NO_OFFSET, "%s", what);
    return qfmt__fail(err, QFMT_E_IO, e, path, NULL, QFMT_NO_OFFSET, "%s: %s", what, strerror(e));
}

int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what)
{
    *mapped = 0;
    int fd;
    int oe = qfmt__open_regular(path, &fd, size, what);
    if (oe) return oe;
    if (*size == 0) {
        close(fd);
        *base = (const uint8_t *)"";
        return 0;
    }
    if (*size > SIZE_MAX) {
        close(fd);
        *what = "too large to map";
        return EFBIG;
    }
    void *p = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd); /* the mapping keeps the file */
    if (p == MAP_FAILED) {
        *what = "cannot map";
        return e;
    }
    *base = p;
    *mapped = 1;
    return 0;
}

void qfmt__unmap_file(const uint8_t *base, uint64_t size, int mapped)
{
    if (mapped) munmap((void *)base, (size_t)size);
}

void qfmt__release_pages(const uint8_t *p, uint64_t n)
{
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || n == 0) return;
    uintptr_t a = (uintptr_t)p, pg = (uintptr_t)page;
    uintptr_t lo = (a + pg - 1) & ~(pg - 1), hi = (uintptr_t)(a + n) & ~(pg - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

qfmt_status qfmt_checksum_file(const char *path, uint64_t *size, uint64_t *checksum, qfmt_error *err)
{
    qfmt__clear_error(err);
    if (!path) return qfmt__fail(err, QFMT_E_ARG, 0, NULL, NULL, QFMT_NO_OFFSET, "NULL path");
    qfmt__alloc al;
    qfmt__alloc_init(&al, NULL);
    enum { CHUNK = 4 << 20 };
    int fd;
    const char *what = "";
    int oe = qfmt__open_regular(path, &fd, NULL, &what);
    if (oe) return qfmt__open_fail(err, path, oe, what);
    void *buf = qfmt__malloc(&al, CHUNK);
    qfmt__hasher *h = qfmt__hasher_new(&al);
    qfmt_status s = QFMT_OK;
    uint64_t total = 0;
    if (!buf || !h) s = qfmt__fail(err, QFMT_E_NOMEM, 0, path, NULL, QFMT_NO_OFFSET, "out of memory");
    while (s == QFMT_OK) {
        ssize_t k = read(fd, buf, CHUNK);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            s = qfmt__fail(err, QFMT_E_IO, errno, path, NULL, total, "read failed: %s", strerror(errno));
            break;
        }
        if (k == 0) break;
        qfmt__hasher_update(h, buf, (size_t)k);
        total += (uint64_t)k;
    }
    if (s == QFMT_OK) {
        if (size) *size = total;
        if (checksum) *checksum = qfmt__hasher_digest(h);
    }
    qfmt__hasher_free(&al, h);
    qfmt__free(&al, buf);
    close(fd);
    return s;
}
