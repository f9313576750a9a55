/*
 * fuzz_scratch.h - the scratch directory of the fuzz targets that write files (fuzz_st_writer,
 * fuzz_dequantize): one per process, in /dev/shm when there is one, written through the POSIX
 * I/O table with a no-op fsync, and removed at exit (left behind, to be seen, if a temporary
 * file was left in it).
 */
#ifndef QFMT_FUZZ_SCRATCH_H
#define QFMT_FUZZ_SCRATCH_H

#define QFMT_STATIC_LINKING_ONLY
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qfmt.h"
#include "fuzz_check.h"

/* The real system calls but fsync, which only costs time here (the scratch files live in
 * /dev/shm and are removed at once). */
static int no_fsync(void *ctx, int fd)
{
    (void)ctx, (void)fd;
    return 0;
}
static qfmt_io io;

static char dir[256];

/* At exit (libFuzzer's -max_total_time and -runs end with exit()): the directory goes. */
static void remove_scratch(void)
{
    char path[400];
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    unlink(path);
    rmdir(dir); /* fails, leaving it to see, if a temporary was left */
}

/* The fuzzer's own scratch directory (one per process), made at the first call. */
static const char *scratch_dir(const char *tag)
{
    if (!dir[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/qfmt-fuzz-%s-%ld", base ? base : "/tmp", tag, (long)getpid());
        mkdir(dir, 0700);
        io = qfmt_io_posix;
        io.fsync = no_fsync;
        atexit(remove_scratch);
    }
    return dir;
}

/* Files in the scratch directory (. and .. aside). */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

#endif
