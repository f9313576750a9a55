/*
 * hf_checkpoint.h - a Hugging Face checkpoint as the converter sees it: config.json, tokenizer.json,
 * generation_config.json and the weights, from one model.safetensors, from shards listed by
 * model.safetensors.index.json, or from a single .safetensors file given directly.
 */
#ifndef QFMT_HF_CHECKPOINT_H
#define QFMT_HF_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "qfmt.h"

typedef struct cJSON cJSON;

typedef struct {
    char *path;        /* as opened */
    char *name;        /* file name without directory */
    uint64_t size;
    uint64_t xxh3;     /* of the whole file, once qfmt__hf_checksum has run */
    qfmt_st_file *st;
} qfmt__hf_shard;

typedef struct {
    uint32_t shard;
    uint64_t index;    /* in that shard */
} qfmt__hf_tensor_ref;

typedef struct {
    cJSON *config;              /* NULL when converting a bare .safetensors file */
    char *config_text, *tokenizer_text, *generation_text; /* NULL when absent */
    size_t config_len, tokenizer_len, generation_len;
    qfmt__hf_shard *shards;
    uint32_t nshards;
    qfmt__hf_tensor_ref *tensors;     /* shard order, then data order inside each shard */
    uint64_t ntensors;
    uint64_t total_bytes;       /* of all shards */
} qfmt__hf_model;

/* A JSON text file read whole (a regular file of at most 256 MiB, never blocking on a FIFO),
 * NUL-terminated. optional: an absent file gives *out = NULL and QFMT_OK. */
qfmt_status qfmt__read_text(const char *path, int optional, char **out, size_t *len, qfmt_error *err);

/* Opens a model directory or a .safetensors file. On failure fills err (file, tensor and
 * offset where known) and leaves *m empty. */
qfmt_status qfmt__hf_open(qfmt__hf_model *m, const char *src, qfmt_error *err);
void qfmt__hf_close(qfmt__hf_model *m);

/* Tensor i of the model. */
qfmt_status qfmt__hf_tensor(const qfmt__hf_model *m, uint64_t i, qfmt_st_tensor *out, qfmt_error *err);
/* Fills each shard's xxh3 (a read of every file, in bounded memory); may run on a thread of
 * its own while tensors are read, as it touches nothing else. */
qfmt_status qfmt__hf_checksum(qfmt__hf_model *m, qfmt_error *err);
/* Releases tensor i's pages after use (bounded memory). */
void qfmt__hf_release(const qfmt__hf_model *m, uint64_t i);

/* config.json's string value of `key`, NULL when absent or of another JSON type. */
const char *qfmt__hf_config_string(const qfmt__hf_model *m, const char *key);

#endif
