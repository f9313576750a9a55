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

int qfmt__write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        size_t chunk = n > (1u << 30) ? (1u << 30) : n;
        ssize_t k = write(fd, c, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        if (k == 0) return EIO; /* no progress: would loop forever */
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

int qfmt__create_temp(const char *path, char *tmp, size_t tmp_cap, uint64_t seed)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = seed ^ ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
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
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

int qfmt__fsync_parent(const char *path)
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
    int fd = open(dir, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    /* Some filesystems refuse fsync on directories; the rename has happened all the same. */
    return rc == EINVAL ? 0 : rc;
}

int qfmt__map_file(const char *path, const uint8_t **base, uint64_t *size, int *mapped,
                   const char **what)
{
    *mapped = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *what = "cannot open";
        return errno;
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
        *what = "not a regular file";
        return EINVAL;
    }
    *size = (uint64_t)st.st_size;
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return qfmt__fail(err, QFMT_E_IO, errno, path, NULL, QFMT_NO_OFFSET, "cannot open: %s", strerror(errno));
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
