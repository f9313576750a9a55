/*
 * gen_hostile - writes the hostile-file corpus of tests/hostile/hostile.c to a directory:
 * base.qfmt (valid), one <case>.qfmt per case, and MANIFEST.txt (file, offset the reader must
 * name or "-" for a file it must accept, bug class). Useful as fuzz seeds:
 *
 *     build/release/tests/gen_hostile /tmp/hostile && cp /tmp/hostile/<name>.qfmt CORPUS_DIR
 *
 * Exit status: 0 all written, 1 some case failed, 2 usage.
 */
#include <stdio.h>
#include <string.h>

#include "hostile.h"

int main(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: gen_hostile DIR\n"
                "writes base.qfmt, %zu hostile files and MANIFEST.txt to DIR\n",
                hostile_case_count());
        return argc == 2 ? 0 : 2;
    }
    int bad = hostile_write_corpus(argv[1]);
    if (bad) {
        fprintf(stderr, "gen_hostile: %d file(s) could not be built or written\n", bad);
        return 1;
    }
    printf("gen_hostile: wrote %zu cases to %s\n", hostile_case_count(), argv[1]);
    return 0;
}
