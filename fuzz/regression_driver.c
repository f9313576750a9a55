/*
 * regression_driver.c - replays inputs through a fuzz target without libFuzzer, so that any
 * compiler can run the corpus (CTest does, on every test run).
 *
 *     fuzz_<name> PATH...     each PATH a file, or a directory replayed recursively
 *
 * Each input is copied into an exactly-sized heap block, as libFuzzer does, so a sanitizer
 * build catches reads past its end. Prints how many inputs ran. Exit status: 0 if at least
 * one input ran and every path could be read, 1 otherwise (a target that finds a bug aborts).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct replay {
    unsigned long inputs;
    unsigned long errors;
};

static void run_file(const char *path, struct replay *st)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "regression_driver: %s: %s\n", path, strerror(errno));
        st->errors++;
        return;
    }
    size_t cap = 1 << 16, size = 0;
    uint8_t *buf = malloc(cap);
    while (buf != NULL) {
        size += fread(buf + size, 1, cap - size, f);
        if (size < cap)
            break;
        uint8_t *bigger = realloc(buf, cap * 2);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    int bad = buf == NULL || ferror(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "regression_driver: %s: cannot read\n", path);
        free(buf);
        st->errors++;
        return;
    }
    /* exact size, so an overread is a heap overflow for ASan */
    uint8_t *exact = malloc(size ? size : 1);
    if (exact == NULL) {
        fprintf(stderr, "regression_driver: %s: out of memory\n", path);
        free(buf);
        st->errors++;
        return;
    }
    if (size > 0)
        memcpy(exact, buf, size);
    free(buf);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    st->inputs++;
}

static void run_path(const char *path, struct replay *st, int depth)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "regression_driver: %s: %s\n", path, strerror(errno));
        st->errors++;
        return;
    }
    if (!S_ISDIR(sb.st_mode)) {
        run_file(path, st);
        return;
    }
    if (depth > 8) /* symlink loops */
        return;
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "regression_driver: %s: %s\n", path, strerror(errno));
        st->errors++;
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.') /* ".", "..", and hidden files such as .gitkeep */
            continue;
        size_t n = strlen(path) + strlen(ent->d_name) + 2;
        char *child = malloc(n);
        if (child == NULL) {
            st->errors++;
            continue;
        }
        snprintf(child, n, "%s/%s", path, ent->d_name);
        run_path(child, st, depth + 1);
        free(child);
    }
    closedir(d);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
        return 2;
    }
    struct replay st = {0, 0};
    for (int i = 1; i < argc; i++)
        run_path(argv[i], &st, 0);
    printf("%s: replayed %lu input%s", argv[0], st.inputs, st.inputs == 1 ? "" : "s");
    if (st.errors)
        printf(", %lu unreadable", st.errors);
    printf("\n");
    return st.inputs > 0 && st.errors == 0 ? 0 : 1;
}
