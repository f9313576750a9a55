/* convert.transposed as a sorted set of names (see transposed.h). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

static int name_cmp(const void *a, const void *b)
{
    const qfmt__name *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int from_reader(qfmt_error *err, const qfmt_reader *r, const qfmt_error *e)
{
    if (err) {
        *err = *e;
        if (!err->path[0]) snprintf(err->path, sizeof err->path, "%s", qfmt_reader_path(r));
    }
    return -1;
}

int qfmt__transposed_load(const qfmt_reader *r, qfmt__transposed *set, qfmt_error *err)
{
    static const char key[] = "convert.transposed";
    memset(set, 0, sizeof *set);
    uint64_t n = 0;
    qfmt_error e;
    qfmt_status s = qfmt_meta_get_string_array(r, key, &n, &e);
    if (s == QFMT_E_NOT_FOUND) return 0;
    if (s != QFMT_OK) return from_reader(err, r, &e);
    if (n == 0) return 0;
    if (n > SIZE_MAX / sizeof(qfmt__name) || !(set->names = malloc((size_t)n * sizeof(qfmt__name))))
        return qfmt__merr(err, QFMT_E_NOMEM, qfmt_reader_path(r), NULL, "out of memory for the %llu names of %s",
                          (unsigned long long)n, key);
    for (uint64_t i = 0; i < n; i++) {
        const char *p;
        uint64_t len;
        if (qfmt_meta_string_array_get(r, key, i, &p, &len, &e) != QFMT_OK) {
            qfmt__transposed_free(set);
            return from_reader(err, r, &e);
        }
        set->names[i] = (qfmt__name){p, (size_t)len};
    }
    set->count = (size_t)n;
    qsort(set->names, set->count, sizeof *set->names, name_cmp);
    return 0;
}

bool qfmt__transposed_has(const qfmt__transposed *set, const char *name)
{
    qfmt__name key = {name, strlen(name)};
    return set->count && bsearch(&key, set->names, set->count, sizeof key, name_cmp) != NULL;
}

void qfmt__transposed_free(qfmt__transposed *set)
{
    free(set->names);
    memset(set, 0, sizeof *set);
}
