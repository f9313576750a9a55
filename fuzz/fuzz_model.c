/*
 * fuzz_model.c - libFuzzer target for loading and running a model from a qfmt file
 * (libqfmt_model/src/model.c: qfmt_model_load, read_hparams, the weight loaders; forward.c;
 * the session's KV cache).
 *
 * Input: arbitrary bytes as a qfmt file, opened with qfmt_reader_open_memory. As fuzz_reader
 * does (the helpers are copied from it), each input runs up to three times: as given, with the
 * header and index checksums recomputed, and (if that opens) with every tensor checksum
 * recomputed too, so that mutations reach the model loader rather than stopping at a checksum.
 * What opens goes to qfmt_model_load; a model that loads with small hyperparameters (vocab,
 * d, ffn <= 4096, layers <= 4, ctx >= 2) runs 2 tokens through qfmt_model_forward on the exact
 * and the fast path (logits and hidden states read in full) and, when causal, a session with
 * 2 incremental steps; a third step past a context of 2 is refused with QFMT_E_RANGE.
 *
 * Checks: a failed load has err.code equal to the status, *out NULL, and a non-empty
 * message whose qfmt_error_format text holds no raw control character; a loaded model has
 * hyperparameters within the limits read_hparams documents (as fuzz_config checks them);
 * an out-of-range token id is refused; forward and session failures are consistent errors.
 *
 * Build: with clang and -DQFMT_FUZZ=ON (libFuzzer), or with any compiler linked with
 * regression_driver.c to replay a corpus. See fuzz/README.md.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qfmt.h"
#include "qfmt_model.h"
#include "fuzz_check.h"
#include "fuzz_checksums.h"

enum { BASE_ALIGNMENT = 4096, SMALL = 4096, MAX_LAYERS = 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_failure(qfmt_status s, const qfmt_error *e)
{
    check_error(s, e);
    CHECK(e->message[0] != '\0');
    char buf[1200];
    const char *text = qfmt_error_format(e, buf, sizeof buf);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++)
        CHECK(*c >= 0x20 && *c != 0x7f);
}

/* The limits read_hparams documents (see fuzz_config.c). */
static void check_hparams(const qfmt_model_hparams *h)
{
    CHECK(h->family != NULL);
    CHECK(h->vocab >= 1 && h->vocab <= (1u << 24));
    CHECK(h->d >= 1 && h->d <= (1u << 24));
    CHECK(h->layers >= 1 && h->layers <= 4096);
    CHECK(h->heads >= 1 && h->kv_heads >= 1 && h->heads % h->kv_heads == 0);
    CHECK(h->head_dim >= 2 && h->head_dim % 2 == 0);
    CHECK(h->ffn >= 1 && h->ctx >= 1);
    CHECK(h->arch != QFMT_ARCH_BERT || (h->type_vocab >= 1 && h->type_vocab <= (1u << 24)));
    CHECK(h->causal == (h->arch != QFMT_ARCH_BERT));
    CHECK(h->layers * h->ctx <= (1ull << 36) / (h->kv_heads * h->head_dim));
}

static void run_model(qfmt_model *m)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    if (h->vocab > SMALL || h->d > SMALL || h->ffn > SMALL || h->layers > MAX_LAYERS || h->ctx < 2)
        return;
    const size_t T = 2;
    int32_t ids[2] = {0, (int32_t)(h->vocab - 1)};
    float *logits = malloc(T * h->vocab * sizeof *logits);
    float *hid[MAX_LAYERS + 1];
    CHECK(logits != NULL);
    for (uint64_t l = 0; l <= h->layers; l++)
        CHECK((hid[l] = malloc(T * h->d * sizeof(float))) != NULL);
    qfmt_error e;
    for (int exact = 1; exact >= 0; exact--) {
        qfmt_run_opts o = {1, exact != 0, {0}};
        qfmt_status s = qfmt_model_forward(m, ids, T, logits, exact ? hid : NULL, &o, &e);
        if (s == QFMT_OK) {
            touch(logits, T * h->vocab * sizeof *logits);
            if (exact)
                for (uint64_t l = 0; l <= h->layers; l++)
                    touch(hid[l], T * h->d * sizeof(float));
        } else {
            check_failure(s, &e);
        }
    }
    qfmt_run_opts o = {1, true, {0}};
    int32_t bad = (int32_t)h->vocab;
    qfmt_status s = qfmt_model_forward(m, &bad, 1, logits, NULL, &o, &e);
    CHECK(s == QFMT_E_RANGE);
    check_failure(s, &e);
    if (h->causal) {
        qfmt_session *ss = NULL;
        s = qfmt_session_new(&ss, m, &e);
        if (s == QFMT_OK) {
            for (size_t i = 0; i < T; i++) {
                s = qfmt_session_eval(ss, &ids[i], 1, logits, &o, &e);
                if (s != QFMT_OK) {
                    check_failure(s, &e);
                    break;
                }
                CHECK(qfmt_session_pos(ss) == i + 1);
                touch(logits, h->vocab * sizeof *logits);
            }
            if (s == QFMT_OK && h->ctx == 2) { /* full: one more is refused, nothing appended */
                s = qfmt_session_eval(ss, ids, 1, logits, &o, &e);
                CHECK(s == QFMT_E_RANGE);
                CHECK(qfmt_session_pos(ss) == 2);
            }
            qfmt_session_free(ss);
        } else {
            check_failure(s, &e);
        }
    } else {
        qfmt_session *ss = NULL;
        s = qfmt_session_new(&ss, m, &e);
        CHECK(s == QFMT_E_UNSUPPORTED && ss == NULL);
    }
    for (uint64_t l = 0; l <= h->layers; l++)
        free(hid[l]);
    free(logits);
}

static void fuzz_one(const uint8_t *data, size_t size)
{
    qfmt_reader *r = NULL;
    qfmt_error e;
    if (qfmt_reader_open_memory(&r, data, size, NULL, &e) != QFMT_OK)
        return;
    /* (A finding of this target, fixed: convert.transposed as an array of an element type the
     * reader does not know, with a count of 2^62, made qfmt_model_load loop; it is now read
     * once through the checked string-array accessor and refused. Seed
     * regress_transposed_unknown_elem_type_hang.) */
    static char not_null;
    qfmt_model *m = (qfmt_model *)(void *)&not_null;
    qfmt_status s = qfmt_model_load(&m, r, &e);
    if (getenv("QFMT_FUZZ_VERBOSE")) {
        char buf[1200];
        fprintf(stderr, "load: %s\n", s ? qfmt_error_format(&e, buf, sizeof buf) : "ok");
    }
    if (s != QFMT_OK) {
        CHECK(m == NULL);
        check_failure(s, &e);
    } else {
        CHECK(m != NULL);
        check_hparams(qfmt_model_hparams_get(m));
        run_model(m);
        qfmt_model_free(m);
    }
    qfmt_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_with_checksums_fixed(data, size, BASE_ALIGNMENT, fuzz_one);
    return 0;
}
