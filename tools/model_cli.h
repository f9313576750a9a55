/* model_cli.h - what run and eval share: opening a model file and its embedded tokenizer,
 * with messages on stderr. */
#ifndef QFMT_MODEL_CLI_H
#define QFMT_MODEL_CLI_H

#include "qfmt_model.h"
#include "qfmt.h"

/* Opens and loads the model in `path`. 0, or -1 after printing why (nothing to free). */
int cli_open_model(const char *path, qfmt_reader **r, qfmt_model **m);
/* The tokenizer embedded in the file's metadata. 0, or -1 after printing why. */
int cli_load_tokenizer(const qfmt_reader *r, qfmt_tokenizer **tok);
/* The text in `path` (UTF-8; a zstd-compressed file is decompressed) as token ids of the
 * file's embedded tokenizer (*out malloc'd). 0, or -1 after printing why. */
int cli_text_tokens(const char *path, const qfmt_reader *r, int32_t **out, size_t *n);

#endif
