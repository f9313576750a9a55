/*
 * cmd_run.c - qfmt run: executes the model in a .qfmt file with nothing else beside it.
 * Causal models generate text from --prompt; BERT fills each [MASK]; --input/--output runs
 * token ids from a safetensors file and writes logits and hidden states for comparison
 * with transformers, tensor by tensor.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "model_cli.h"
#include "qfmt_model.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: qfmt run MODEL --prompt TEXT [-n N] [--temperature T] [--top-k K] [--seed S]\n"
    "                [--threads N] [--exact | --fast]\n"
    "       qfmt run MODEL --input IDS.safetensors --output OUT.safetensors [--threads N] [--fast]\n"
    "\n"
    "Runs the model in MODEL (GPT-2, LLaMA, Mistral, Qwen 2/3, Gemma 2/3, Phi-3 or BERT) using\n"
    "only that file (weights, hyperparameters and the embedded tokenizer).\n"
    "\n"
    "  --prompt TEXT      causal models: generate N tokens after TEXT, printed as they come, then\n"
    "                     a line with prompt and generation speed on stderr; BERT: fill each\n"
    "                     [MASK] in TEXT and print the top K candidates with their probabilities\n"
    "  -n N               tokens to generate (default 32; stops early at the end-of-text token)\n"
    "  --temperature T    0 (default) is greedy; above 0 samples from softmax(logits / T)\n"
    "  --top-k K          sample among the K most likely tokens (default 40; BERT: candidates shown, 5)\n"
    "  --seed S           random seed for sampling (default 1)\n"
    "  --input FILE       run `input_ids` (I32 or I64 [B, T]) from a safetensors file ...\n"
    "  --output FILE      ... and write `logits` (F32 [B, T, V]) and `hidden.0`..`hidden.L` of\n"
    "                     sequence 0 (F32 [T, d]) there\n"
    "  --threads N        worker threads (default: the number of CPUs)\n"
    "  --exact            fp32 products against weights decoded on the fly (reproduces\n"
    "                     transformers on the dequantized weights; default for --input)\n"
    "  --fast             8-bit activations and integer dot products (default for --prompt)\n"
    "\n"
    "Exit status: 0 success, 1 failure (bad model or input), 2 usage error.\n";

typedef struct {
    const char *model, *prompt, *input, *output;
    uint64_t n, top_k, seed;
    double temperature;
    unsigned threads;
    int exact; /* -1: the mode's default */
    bool top_k_set;
} options;

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->n = 32;
    o->top_k = 40;
    o->seed = 1;
    o->exact = -1;
    o->threads = cli_online_cpus();
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        uint64_t u;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--prompt", &v)) != 0) {
            if (r < 0) return cli_usage_error("run", usage, "--prompt needs a text");
            o->prompt = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "-n", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 0, 1u << 20, &o->n)) return cli_usage_error("run", usage, "-n takes a count");
        } else if ((r = cli_opt_value(argc, argv, &i, "--temperature", &v)) != 0) {
            char *end;
            o->temperature = r < 0 ? -1 : strtod(v, &end);
            if (r < 0 || *end || !(o->temperature >= 0) || o->temperature > 100)
                return cli_usage_error("run", usage, "--temperature takes a number from 0 to 100");
        } else if ((r = cli_opt_value(argc, argv, &i, "--top-k", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, 1u << 24, &o->top_k)) return cli_usage_error("run", usage, "--top-k takes a count");
            o->top_k_set = true;
        } else if ((r = cli_opt_value(argc, argv, &i, "--seed", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 0, UINT64_MAX, &o->seed)) return cli_usage_error("run", usage, "--seed takes a number");
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, 256, &u)) return cli_usage_error("run", usage, "--threads takes 1 to 256");
            o->threads = (unsigned)u;
        } else if ((r = cli_opt_value(argc, argv, &i, "--input", &v)) != 0) {
            if (r < 0) return cli_usage_error("run", usage, "--input needs a file");
            o->input = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--output", &v)) != 0 ||
                   (r = cli_opt_value(argc, argv, &i, "-o", &v)) != 0) {
            if (r < 0) return cli_usage_error("run", usage, "--output needs a file");
            o->output = v;
        } else if (strcmp(argv[i], "--exact") == 0) {
            o->exact = 1;
        } else if (strcmp(argv[i], "--fast") == 0) {
            o->exact = 0;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("run", usage, "unknown option '%s'", argv[i]);
        } else if (!o->model) {
            o->model = argv[i];
        } else {
            return cli_usage_error("run", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!o->model) return cli_usage_error("run", usage, "no model file given");
    if (!o->prompt == !o->input) return cli_usage_error("run", usage, "give either --prompt or --input");
    if (o->input && !o->output) return cli_usage_error("run", usage, "--input needs --output");
    return 0;
}

/* ---- --input / --output ---------------------------------------------------------------- */

static int run_ids(const options *o, qfmt_model *m)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    qfmt_st_file *in = NULL;
    qfmt_error e;
    char eb[1024];
    if (qfmt_st_open(&in, o->input, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return CLI_EXIT_FAILURE;
    }
    qfmt_token_ids t;
    int rc = CLI_EXIT_OK;
    if (qfmt_token_ids_read(in, "input_ids", false, &t, &e) != QFMT_OK) {
        snprintf(e.path, sizeof e.path, "%s", o->input);
        cli_error_qfmt(&e);
        rc = CLI_EXIT_FAILURE;
    } else if (t.ndim != 2 || t.dims[1] == 0) {
        cli_error("%s: tensor 'input_ids' must be I32 or I64 [B, T] with T > 0", o->input);
        rc = CLI_EXIT_FAILURE;
    }
    qfmt_st_close(in); /* the ids are copied */
    if (rc != CLI_EXIT_OK) {
        qfmt_token_ids_free(&t);
        return rc;
    }
    size_t B = (size_t)t.dims[0], T = (size_t)t.dims[1], V = (size_t)h->vocab, d = (size_t)h->d, L = (size_t)h->layers;
    int32_t *ids = malloc(T * sizeof *ids);
    float *logits = malloc(T * V * sizeof *logits + 1);
    float **hidden = calloc(L + 1, sizeof *hidden);
    qfmt_st_tensor_desc *outs = calloc(L + 2, sizeof *outs);
    char (*names)[32] = calloc(L + 1, sizeof *names);
    bool ok = ids && logits && hidden && outs && names;
    for (size_t l = 0; ok && l <= L; l++) ok = (hidden[l] = malloc(T * d * sizeof(float) + 1)) != NULL;
    qfmt_st_writer *so = NULL;
    qfmt_error se;
    if (!ok) {
        cli_error("out of memory");
        rc = CLI_EXIT_FAILURE;
    } else {
        outs[0] = (qfmt_st_tensor_desc){.name = "logits", .type = QFMT_TYPE_F32, .ndim = 3, .dims = {B, T, V}};
        for (size_t l = 0; l <= L; l++) {
            snprintf(names[l], sizeof names[l], "hidden.%zu", l);
            outs[l + 1] = (qfmt_st_tensor_desc){.name = names[l], .type = QFMT_TYPE_F32, .ndim = 2, .dims = {T, d}};
        }
        if (qfmt_st_writer_begin(&so, o->output, outs, L + 2, NULL, &se) != QFMT_OK) {
            cli_error_qfmt(&se);
            rc = CLI_EXIT_FAILURE;
        }
    }
    qfmt_run_opts ro = {o->threads, o->exact != 0, {0}};
    /* logits of every sequence come first in the file; hidden states are sequence 0's */
    for (size_t b = 0; rc == CLI_EXIT_OK && b < B; b++) {
        memcpy(ids, t.ids + b * T, T * sizeof *ids);
        if (qfmt_model_forward(m, ids, T, logits, b == 0 ? hidden : NULL, &ro, &e) != QFMT_OK) {
            cli_error("%s: sequence %zu: %s", o->input, b, qfmt_error_format(&e, eb, sizeof eb));
            rc = CLI_EXIT_FAILURE;
        } else if (qfmt_st_writer_write(so, logits, T * V * sizeof(float), &se) != QFMT_OK) {
            cli_error_qfmt(&se);
            rc = CLI_EXIT_FAILURE;
        }
    }
    for (size_t l = 0; rc == CLI_EXIT_OK && l <= L; l++)
        if (qfmt_st_writer_write(so, hidden[l], T * d * sizeof(float), &se) != QFMT_OK) {
            cli_error_qfmt(&se);
            rc = CLI_EXIT_FAILURE;
        }
    if (rc == CLI_EXIT_OK && so && qfmt_st_writer_commit(so, &se) != QFMT_OK) {
        cli_error_qfmt(&se);
        rc = CLI_EXIT_FAILURE;
    }
    qfmt_st_writer_free(so);
    for (size_t l = 0; hidden && l <= L; l++) free(hidden[l]);
    free(hidden), free(ids), free(logits), free(outs), free(names);
    qfmt_token_ids_free(&t);
    return rc;
}

/* ---- --prompt ------------------------------------------------------------------------ */

/* Prints each generated token's text as Hugging Face's DecodeStream gives it (spaces kept,
 * characters printed once their bytes are complete). */
static void emit(qfmt_decode_stream **ds, const qfmt_tokenizer *tok, int32_t id)
{
    const char *text;
    size_t n;
    if (!*ds) return;
    qfmt_status s = qfmt_decode_stream_step(*ds, id, &text, &n, NULL);
    if (s == QFMT_E_STATE) { /* the text so far was rewritten (HF's InvalidPrefix): start afresh */
        qfmt_decode_stream_free(*ds);
        *ds = NULL;
        if (qfmt_decode_stream_new(ds, tok, false, NULL) != QFMT_OK) return;
        s = qfmt_decode_stream_step(*ds, id, &text, &n, NULL);
    }
    if (s == QFMT_OK && n) {
        fwrite(text, 1, n, stdout);
        fflush(stdout);
    }
}

static int generate(const options *o, qfmt_model *m, const qfmt_tokenizer *tok, const int32_t *ids, size_t n,
                    const qfmt_reader *r)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    qfmt_error e;
    char eb[1024];
    if (n == 0) {
        cli_error("the prompt encodes to no tokens");
        return CLI_EXIT_FAILURE;
    }
    if (n + o->n > h->ctx) {
        cli_error("%s: %zu prompt tokens + %" PRIu64 " to generate exceed the model's context of %" PRIu64,
                  o->model, n, o->n, h->ctx);
        return CLI_EXIT_FAILURE;
    }
    qfmt_session *s;
    if (qfmt_session_new(&s, m, &e) != QFMT_OK) {
        cli_error("%s: %s", o->model, qfmt_error_format(&e, eb, sizeof eb));
        return CLI_EXIT_FAILURE;
    }
    uint64_t eos = UINT64_MAX;
    qfmt_meta_get_u64(r, "model.eos_token_id", &eos, NULL);
    float *logits = malloc(h->vocab * sizeof *logits);
    qfmt_sampler *sm = NULL;
    if (qfmt_sampler_new(&sm, (size_t)h->vocab, o->temperature, o->top_k, o->seed, &e) != QFMT_OK) {
        cli_error("%s: sampler: %s", o->model, e.message);
        free(logits);
        qfmt_session_free(s);
        return CLI_EXIT_FAILURE;
    }
    qfmt_run_opts ro = {o->threads, o->exact == 1, {0}};
    int rc = CLI_EXIT_OK;
    qfmt_decode_stream *ds = NULL; /* primed with the prompt, whose text is printed as given */
    if (qfmt_decode_stream_new(&ds, tok, false, NULL) == QFMT_OK)
        for (size_t i = 0; i < n; i++) {
            const char *skip;
            size_t sl;
            (void)qfmt_decode_stream_step(ds, ids[i], &skip, &sl, NULL);
        }
    fwrite(o->prompt, 1, strlen(o->prompt), stdout);
    fflush(stdout);
    double t0 = cli_now();
    if (!logits || qfmt_session_eval(s, ids, n, logits, &ro, &e) != QFMT_OK) {
        cli_error("%s: %s", o->model, logits ? qfmt_error_format(&e, eb, sizeof eb) : "out of memory");
        rc = CLI_EXIT_FAILURE;
    }
    double t1 = cli_now(), t2 = t1;
    uint64_t made = 0;
    while (rc == CLI_EXIT_OK && made < o->n) {
        int32_t id = qfmt_sampler_pick(sm, logits);
        made++;
        if ((uint64_t)id == eos) break;
        emit(&ds, tok, id);
        if (made == o->n) break;
        if (qfmt_session_eval(s, &id, 1, logits, &ro, &e) != QFMT_OK) {
            cli_error("%s: %s", o->model, qfmt_error_format(&e, eb, sizeof eb));
            rc = CLI_EXIT_FAILURE;
        }
    }
    t2 = cli_now();
    qfmt_decode_stream_free(ds);
    fputc('\n', stdout);
    if (rc == CLI_EXIT_OK)
        fprintf(stderr, "prompt: %zu tokens, %.1f tok/s; generation: %" PRIu64 " tokens, %.1f tok/s (%s path, %u threads)\n",
                n, (double)n / (t1 - t0 > 0 ? t1 - t0 : 1e-9), made,
                made ? (double)made / (t2 - t1 > 0 ? t2 - t1 : 1e-9) : 0.0, ro.exact ? "exact" : "fast", o->threads);
    free(logits);
    qfmt_sampler_free(sm);
    qfmt_session_free(s);
    return rc;
}

static int fill_masks(const options *o, qfmt_model *m, const qfmt_tokenizer *tok, const int32_t *prompt, size_t n)
{
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    int32_t mask = qfmt_tokenizer_token_id(tok, "[MASK]"), cls = qfmt_tokenizer_token_id(tok, "[CLS]"),
            sep = qfmt_tokenizer_token_id(tok, "[SEP]");
    if (mask < 0) {
        cli_error("%s: the tokenizer has no [MASK] token", o->model);
        return CLI_EXIT_FAILURE;
    }
    /* BERT's inputs are [CLS] text [SEP], as its tokenizer's post-processor adds them */
    int32_t *ids = malloc((n + 2) * sizeof *ids);
    size_t T = 0;
    if (!ids) return CLI_EXIT_FAILURE;
    if (cls >= 0 && (n == 0 || prompt[0] != cls)) ids[T++] = cls;
    memcpy(ids + T, prompt, n * sizeof *ids);
    T += n;
    if (sep >= 0 && (T == 0 || ids[T - 1] != sep)) ids[T++] = sep;
    qfmt_error e;
    char eb[1024];
    float *logits = malloc(T * h->vocab * sizeof *logits);
    qfmt_sampler *sm = NULL;
    qfmt_run_opts ro = {o->threads, o->exact == 1, {0}};
    int rc = CLI_EXIT_OK, masks = 0;
    if (qfmt_sampler_new(&sm, (size_t)h->vocab, 0, 1, 0, &e) != QFMT_OK) {
        cli_error("%s: %s", o->model, e.message);
        rc = CLI_EXIT_FAILURE;
    } else if (!logits || qfmt_model_forward(m, ids, T, logits, NULL, &ro, &e) != QFMT_OK) {
        cli_error("%s: %s", o->model, logits ? qfmt_error_format(&e, eb, sizeof eb) : "out of memory");
        rc = CLI_EXIT_FAILURE;
    }
    size_t K = o->top_k_set ? o->top_k : 5;
    for (size_t t = 0; rc == CLI_EXIT_OK && t < T; t++) {
        if (ids[t] != mask) continue;
        masks++;
        const qfmt_candidate *c;
        size_t k = qfmt_sampler_top(sm, logits + t * h->vocab, K, 1.0, &c);
        printf("[MASK] at token %zu:", t);
        for (size_t i = 0; i < k; i++) {
            const char *b;
            size_t bl;
            if (qfmt_tokenizer_token_bytes(tok, c[i].id, &b, &bl) != 0) continue;
            printf("  '");
            cli_print_escaped(stdout, b, bl, 40);
            printf("' %.3f", c[i].p);
        }
        printf("\n");
    }
    if (rc == CLI_EXIT_OK && masks == 0) {
        cli_error("the prompt has no [MASK] token to fill");
        rc = CLI_EXIT_FAILURE;
    }
    free(ids), free(logits);
    qfmt_sampler_free(sm);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? cli_finish_stdout(CLI_EXIT_OK) : rc;
    qfmt_reader *r;
    qfmt_model *m;
    qfmt_error e;
    char eb[1024];
    if (cli_open_model(o.model, &r, &m) != 0) return CLI_EXIT_FAILURE;
    if (o.input) {
        rc = run_ids(&o, m);
    } else {
        qfmt_tokenizer *tok = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        if (cli_load_tokenizer(r, &tok) != 0) {
            rc = CLI_EXIT_FAILURE;
        } else if (qfmt_tokenizer_encode_with(tok, o.prompt, strlen(o.prompt), QFMT_TOKENIZE_ADD_SPECIAL, &ids, &n, &e) !=
                   QFMT_OK) {
            cli_error("%s: tokenizer: %s", o.model, qfmt_error_format(&e, eb, sizeof eb));
            rc = CLI_EXIT_FAILURE;
        } else if (qfmt_model_hparams_get(m)->causal) {
            rc = generate(&o, m, tok, ids, n, r);
        } else {
            rc = fill_masks(&o, m, tok, ids, n);
        }
        free(ids);
        qfmt_tokenizer_free(tok);
    }
    qfmt_model_free(m);
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
