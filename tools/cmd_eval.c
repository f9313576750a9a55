/*
 * cmd_eval.c - qfmt eval: perplexity over a token stream, the protocol of the fixtures'
 * expected.json: non-overlapping windows of --ctx tokens from the first token, each from an
 * empty context. Causal models score each window's ctx-1 next-token predictions; BERT scores
 * masked positions (pseudo-perplexity). ppl = exp(mean negative log-likelihood).
 * --kl-base REF runs a reference model on the same windows and compares the token
 * distributions at the scored positions (qfmt_kl_acc: libqfmt_model/src/kl.c).
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "model_cli.h"
#include "qfmt_model.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: qfmt eval MODEL (--tokens FILE.safetensors | --text FILE.txt) [--ctx N] [--windows N]\n"
    "                 [--mask FILE.safetensors] [--kl-base REF.qfmt] [--threads N] [--fast] [--json]\n"
    "\n"
    "Perplexity of MODEL over a token stream, in non-overlapping windows of --ctx tokens from the\n"
    "first token, each evaluated from an empty context. Token ids are taken modulo the vocabulary.\n"
    "\n"
    "  --tokens FILE   the tensor 'tokens' (or the first tensor) of a safetensors file, I32 or I64\n"
    "  --text FILE     a UTF-8 text (or zstd-compressed), tokenized with the model's embedded tokenizer\n"
    "  --ctx N         window length (default 128, at most the model's context)\n"
    "  --windows N     windows to evaluate (default: every whole window in the stream)\n"
    "  --mask FILE     BERT: U8 [windows, ctx], 1 = replace by [MASK] and score; without it every\n"
    "                  7th position (ctx positions p with p % 7 == 3) is masked and scored\n"
    "  --kl-base REF   compare with REF, the same model in f32/f16/bf16, run on the same windows:\n"
    "                  at every scored position KL(P_REF || P_MODEL) over the whole vocabulary;\n"
    "                  prints its mean and 99th percentile (nearest rank), the share of positions\n"
    "                  whose top token (first on ties) is the same, REF's perplexity and\n"
    "                  ppl(MODEL) / ppl(REF). REF must have MODEL's architecture and vocabulary\n"
    "                  (--text is tokenized with MODEL's tokenizer); quantized linear weights in\n"
    "                  REF draw a warning\n"
    "  --threads N     worker threads (default: the number of CPUs)\n"
    "  --fast          the fast path (8-bit activations, integer dot products) for MODEL; REF\n"
    "                  always runs the exact path. Default: exact\n"
    "  --json          one JSON object: perplexity, scored_tokens, tokens_per_second, and more;\n"
    "                  with --kl-base an object \"kl\": mean, p99, median, max, same_top,\n"
    "                  ppl_ratio, ref_perplexity, positions, ref\n"
    "\n"
    "Causal models score the ctx-1 next-token predictions of each window. BERT (pseudo-\n"
    "perplexity): token 0 of each window becomes [CLS], masked positions become [MASK] and are\n"
    "scored against the original token; --kl-base compares at those masked positions.\n"
    "With --kl-base, tokens/s counts MODEL's forward passes only.\n"
    "Exit status: 0 success, 1 failure, 2 usage error.\n";

typedef struct {
    const char *model, *tokens, *text, *mask, *kl_base;
    uint64_t ctx, windows;
    unsigned threads;
    bool fast, json;
} options;

static int parse(int argc, char **argv, options *o)
{
    memset(o, 0, sizeof *o);
    o->ctx = 128;
    o->threads = cli_online_cpus();
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        uint64_t u;
        if (cli_is_help(argv[i])) {
            fputs(usage, stdout);
            return -1;
        } else if ((r = cli_opt_value(argc, argv, &i, "--tokens", &v)) != 0) {
            if (r < 0) return cli_usage_error("eval", usage, "--tokens needs a file");
            o->tokens = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--text", &v)) != 0) {
            if (r < 0) return cli_usage_error("eval", usage, "--text needs a file");
            o->text = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--mask", &v)) != 0) {
            if (r < 0) return cli_usage_error("eval", usage, "--mask needs a file");
            o->mask = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--kl-base", &v)) != 0) {
            if (r < 0) return cli_usage_error("eval", usage, "--kl-base needs a file");
            o->kl_base = v;
        } else if ((r = cli_opt_value(argc, argv, &i, "--ctx", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 2, 1u << 20, &o->ctx)) return cli_usage_error("eval", usage, "--ctx takes 2 or more");
        } else if ((r = cli_opt_value(argc, argv, &i, "--windows", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, UINT32_MAX, &o->windows)) return cli_usage_error("eval", usage, "--windows takes a count");
        } else if ((r = cli_opt_value(argc, argv, &i, "--threads", &v)) != 0) {
            if (r < 0 || !cli_parse_u64(v, 1, 256, &u)) return cli_usage_error("eval", usage, "--threads takes 1 to 256");
            o->threads = (unsigned)u;
        } else if (strcmp(argv[i], "--fast") == 0) {
            o->fast = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return cli_usage_error("eval", usage, "unknown option '%s'", argv[i]);
        } else if (!o->model) {
            o->model = argv[i];
        } else {
            return cli_usage_error("eval", usage, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!o->model) return cli_usage_error("eval", usage, "no model file given");
    if (!o->tokens == !o->text) return cli_usage_error("eval", usage, "give either --tokens or --text");
    return 0;
}

/* Token ids from a safetensors file: 'tokens', else its first tensor. */
static int load_tokens(const char *path, int32_t **out, size_t *n)
{
    qfmt_st_file *f;
    qfmt_error e;
    if (qfmt_st_open(&f, path, NULL, &e) != QFMT_OK) {
        cli_error_qfmt(&e);
        return -1;
    }
    qfmt_token_ids t;
    qfmt_status s = qfmt_token_ids_read(f, "tokens", true, &t, &e);
    qfmt_st_close(f);
    if (s != QFMT_OK) {
        snprintf(e.path, sizeof e.path, "%s", path);
        cli_error_qfmt(&e);
        return -1;
    }
    *out = t.ids; /* the caller frees it */
    *n = (size_t)t.count;
    return 0;
}


/* --kl-base REF: MODEL's family and vocabulary, a context of ctx at least; a warning when its
 * linear weights (the ones convert quantizes) are not float. 0, or -1 after printing why. */
static int open_ref(const options *o, const qfmt_model_hparams *h, qfmt_reader **rr, qfmt_model **rm)
{
    if (cli_open_model(o->kl_base, rr, rm) != 0) return -1;
    const qfmt_model_hparams *hr = qfmt_model_hparams_get(*rm);
    if (hr->family != h->family || hr->arch != h->arch) {
        const char *a = qfmt_family_name(h->family), *b = qfmt_family_name(hr->family);
        cli_error("--kl-base: %s is a '%s' model and %s a '%s' one: REF must be the same model in a float type",
                  o->kl_base, b ? b : "?", o->model, a ? a : "?");
        return -1;
    }
    if (hr->vocab != h->vocab) {
        cli_error("--kl-base: %s has a vocabulary of %" PRIu64 " tokens and %s one of %" PRIu64
                  ": their token distributions cannot be compared",
                  o->kl_base, hr->vocab, o->model, h->vocab);
        return -1;
    }
    if (o->ctx > hr->ctx) {
        cli_error("--ctx %" PRIu64 " exceeds the context of %s, %" PRIu64, o->ctx, o->kl_base, hr->ctx);
        return -1;
    }
    uint64_t quantized = 0;
    qfmt_tensor_info first = {0};
    for (uint64_t i = 0; i < qfmt_tensor_count(*rr); i++) {
        qfmt_tensor_info ti;
        if (qfmt_tensor_get_info(*rr, i, &ti, NULL) != QFMT_OK) continue;
        if (ti.type == QFMT_TYPE_F32 || ti.type == QFMT_TYPE_F16 || ti.type == QFMT_TYPE_BF16) continue;
        if (!(qfmt_family_tensor_role(hr->family, ti.name) & QFMT_FAMILY_QUANTIZE)) continue;
        if (quantized++ == 0) first = ti;
    }
    if (quantized) {
        char tn[24];
        fprintf(stderr, "qfmt: warning: --kl-base: %s is not a float model: %" PRIu64 " linear weight%s %s ",
                o->kl_base, quantized, quantized == 1 ? "" : "s", quantized == 1 ? "is" : "are");
        fprintf(stderr, "%s (", cli_type_name(first.type, tn, sizeof tn));
        cli_print_escaped(stderr, first.name, strlen(first.name), 80);
        fprintf(stderr, "%s); the figures compare MODEL with that\n", quantized == 1 ? "" : ", ...");
    }
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    options o;
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? cli_finish_stdout(CLI_EXIT_OK) : rc;
    qfmt_reader *r = NULL;
    qfmt_error e;
    qfmt_model *m = NULL;
    char eb[1024];
    int32_t *tokens = NULL, *ids = NULL;
    uint8_t *mask = NULL;
    float *logits = NULL, *ref_logits = NULL;
    size_t ntok = 0;
    qfmt_st_file *mf = NULL;
    qfmt_reader *rr = NULL; /* --kl-base */
    qfmt_model *rm = NULL;
    qfmt_kl_acc *acc = NULL;
    rc = CLI_EXIT_FAILURE;
    if (cli_open_model(o.model, &r, &m) != 0) goto done;
    const qfmt_model_hparams *h = qfmt_model_hparams_get(m);
    if (o.ctx > h->ctx) {
        cli_error("--ctx %" PRIu64 " exceeds the model's context of %" PRIu64, o.ctx, h->ctx);
        goto done;
    }
    if (o.kl_base && open_ref(&o, h, &rr, &rm) != 0) goto done;
    if ((o.tokens ? load_tokens(o.tokens, &tokens, &ntok) : cli_text_tokens(o.text, r, &tokens, &ntok)) != 0)
        goto done;
    for (size_t i = 0; i < ntok; i++) tokens[i] = (int32_t)((uint64_t)tokens[i] % h->vocab);
    size_t ctx = (size_t)o.ctx, windows = ntok / ctx;
    if (o.windows) {
        if (o.windows > windows) {
            cli_error("%zu tokens hold %zu windows of %zu, not %" PRIu64, ntok, windows, ctx, o.windows);
            goto done;
        }
        windows = (size_t)o.windows;
    }
    if (windows == 0) {
        cli_error("%zu tokens do not fill one window of %zu", ntok, ctx);
        goto done;
    }
    int32_t mask_id = -1, cls_id = -1;
    if (!h->causal) { /* BERT needs [MASK] and [CLS]: from the tokenizer */
        qfmt_tokenizer *tok = NULL;
        if (cli_load_tokenizer(r, &tok) == 0) {
            mask_id = qfmt_tokenizer_token_id(tok, "[MASK]");
            cls_id = qfmt_tokenizer_token_id(tok, "[CLS]");
        }
        qfmt_tokenizer_free(tok);
        if (mask_id < 0 || cls_id < 0) {
            cli_error("%s: a masked-LM eval needs the tokenizer's [MASK] and [CLS] tokens", o.model);
            goto done;
        }
        if (!(mask = malloc(windows * ctx))) goto oom;
        if (o.mask) {
            if (qfmt_st_open(&mf, o.mask, NULL, &e) != QFMT_OK ||
                qfmt_position_mask_read(mf, "mask", true, windows, ctx, mask, &e) != QFMT_OK) {
                if (!e.path[0]) snprintf(e.path, sizeof e.path, "%s", o.mask);
                cli_error_qfmt(&e);
                goto done;
            }
        } else {
            for (size_t i = 0; i < windows * ctx; i++) mask[i] = (i % ctx) % 7 == 3;
        }
    }
    if (!(ids = malloc(ctx * sizeof *ids)) || !(logits = malloc(ctx * h->vocab * sizeof *logits))) goto oom;
    if (rm) {
        if (!(ref_logits = malloc(ctx * h->vocab * sizeof *ref_logits))) goto oom;
        if (qfmt_kl_acc_new(&acc, (size_t)h->vocab, &e) != QFMT_OK) {
            cli_error_qfmt(&e);
            goto done;
        }
    }
    qfmt_run_opts ro = {o.threads, !o.fast, {0}}, ref_ro = {o.threads, true, {0}}; /* REF: always exact */
    double total = 0, t0 = cli_now(), model_s = 0; /* model_s: MODEL's forward passes */
    uint64_t scored = 0;
    bool show = !o.json && isatty(STDERR_FILENO);
    qfmt_kl_stats ks;
    for (size_t w = 0; w < windows; w++) {
        const int32_t *win = tokens + w * ctx;
        memcpy(ids, win, ctx * sizeof *ids);
        if (!h->causal) {
            ids[0] = cls_id;
            for (size_t t = 1; t < ctx; t++)
                if (mask[w * ctx + t]) ids[t] = mask_id;
        }
        double tm = cli_now();
        if (qfmt_model_forward(m, ids, ctx, logits, NULL, &ro, &e) != QFMT_OK) {
            cli_error("%s: window %zu: %s", o.model, w, qfmt_error_format(&e, eb, sizeof eb));
            goto done;
        }
        model_s += cli_now() - tm;
        if (rm && qfmt_model_forward(rm, ids, ctx, ref_logits, NULL, &ref_ro, &e) != QFMT_OK) {
            cli_error("%s: window %zu: %s", o.kl_base, w, qfmt_error_format(&e, eb, sizeof eb));
            goto done;
        }
        for (size_t t = 0; t < ctx; t++) {
            int32_t target; /* the token position t scores, if it scores one */
            if (h->causal && t + 1 < ctx) target = win[t + 1];
            else if (!h->causal && t > 0 && mask[w * ctx + t]) target = win[t];
            else continue;
            const float *row = logits + t * h->vocab;
            total += qfmt_nll(row, h->vocab, target);
            scored++;
            if (acc && qfmt_kl_acc_add(acc, ref_logits + t * h->vocab, row, target, &e) != QFMT_OK) {
                cli_error_qfmt(&e);
                goto done;
            }
        }
        if (show) {
            double dt = acc ? model_s : cli_now() - t0;
            fprintf(stderr, "\reval: window %zu/%zu  ppl %.4f  %.0f tok/s", w + 1, windows,
                    scored ? exp(total / (double)scored) : 0.0, (double)((w + 1) * ctx) / (dt > 0 ? dt : 1e-9));
            if (acc) {
                qfmt_kl_acc_stats(acc, &ks);
                fprintf(stderr, "  KL %.6g  same top %.2f%%", ks.mean, 100 * ks.same_top);
            }
            fputs("   ", stderr);
            fflush(stderr);
        }
    }
    if (show) fputc('\n', stderr);
    double dt = acc ? model_s : cli_now() - t0, tps = (double)(windows * ctx) / (dt > 0 ? dt : 1e-9);
    if (scored == 0) {
        cli_error("no position was scored (is the mask empty?)");
        goto done;
    }
    double ppl = exp(total / (double)scored);
    if (acc) qfmt_kl_acc_stats(acc, &ks);
    if (o.json) {
        cJSON *doc = cJSON_CreateObject(), *mix = cJSON_CreateObject();
        bool ok = doc && mix;
        for (uint64_t i = 0; ok && i < qfmt_tensor_count(r); i++) { /* parameters per stored type */
            qfmt_tensor_info ti;
            char tn[24];
            qfmt_tensor_get_info(r, i, &ti, NULL);
            cli_type_name(ti.type, tn, sizeof tn);
            cJSON *c = cJSON_GetObjectItemCaseSensitive(mix, tn);
            if (c) cJSON_SetNumberValue(c, c->valuedouble + (double)ti.nelements);
            else ok = cJSON_AddNumberToObject(mix, tn, (double)ti.nelements) != NULL;
        }
        ok = ok && cli_json_add(doc, "model", cli_json_text(o.model, strlen(o.model))) &&
             cJSON_AddNumberToObject(doc, "perplexity", ppl) && cli_json_add(doc, "scored_tokens", cli_json_u64(scored)) &&
             cJSON_AddNumberToObject(doc, "tokens_per_second", tps) && cli_json_add(doc, "windows", cli_json_u64(windows)) &&
             cli_json_add(doc, "ctx", cli_json_u64(ctx)) && cJSON_AddStringToObject(doc, "path", o.fast ? "fast" : "exact") &&
             cJSON_AddItemToObject(doc, "type_mix", mix);
        if (ok && acc) {
            cJSON *kl = cJSON_CreateObject();
            bool k = kl && cli_json_add(kl, "mean", cli_json_real(ks.mean, false)) &&
                     cli_json_add(kl, "p99", cli_json_real(ks.p99, false)) &&
                     cli_json_add(kl, "median", cli_json_real(ks.median, false)) &&
                     cli_json_add(kl, "max", cli_json_real(ks.max, false)) &&
                     cli_json_add(kl, "same_top", cli_json_real(ks.same_top, false)) &&
                     cli_json_add(kl, "ppl_ratio", cli_json_real(ks.ppl_ratio, false)) &&
                     cli_json_add(kl, "ref_perplexity", cli_json_real(ks.ref_perplexity, false)) &&
                     cli_json_add(kl, "positions", cli_json_u64(ks.positions)) &&
                     cli_json_add(kl, "ref", cli_json_text(o.kl_base, strlen(o.kl_base)));
            if (!k) cJSON_Delete(kl);
            ok = k && cli_json_add(doc, "kl", kl);
        }
        if (!ok) {
            cJSON_Delete(doc);
            if (!cJSON_IsObject(mix) || !doc) cJSON_Delete(mix);
            goto oom;
        }
        rc = cli_json_print(doc);
        cJSON_Delete(doc);
    } else {
        printf("perplexity %.6f over %" PRIu64 " scored tokens (%zu windows of %zu), %.1f tokens/s, %s path\n", ppl,
               scored, windows, ctx, tps, o.fast ? "fast" : "exact");
        if (acc) {
            printf("KL divergence from %s: mean %.6g, p99 %.6g nats; same top token at %.2f%% of %" PRIu64
                   " positions\n",
                   o.kl_base, ks.mean, ks.p99, 100 * ks.same_top, ks.positions);
            printf("perplexity ratio %.6f (REF perplexity %.6f)\n", ks.ppl_ratio, ks.ref_perplexity);
        }
        rc = CLI_EXIT_OK;
    }
    goto done;
oom:
    cli_error("out of memory");
    rc = CLI_EXIT_FAILURE;
done:
    qfmt_st_close(mf);
    free(tokens), free(ids), free(mask), free(logits), free(ref_logits);
    qfmt_kl_acc_free(acc);
    qfmt_model_free(rm);
    qfmt_reader_close(rr);
    qfmt_model_free(m);
    qfmt_reader_close(r);
    return cli_finish_stdout(rc);
}
