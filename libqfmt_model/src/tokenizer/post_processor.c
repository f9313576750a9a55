/* post_processor.c - the post-processors (tk_internal.h), for one sequence: the special
 * tokens around the model's ids. Every processor but Sequence reduces to a template: a list
 * of ids where SEQ stands for the sequence's own ids. Pair templates are checked, not kept. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_internal.h"

#define SEQ (-1) /* in a template: the input ids */

struct tk_post_processor {
    tk_ids tmpl;              /* not a Sequence: the single template */
    tk_post_processor **subs; /* Sequence: applied in order */
    size_t nsubs;
    bool sequence;
};

void qfmt__tk_post_processor_free(tk_post_processor *pp)
{
    if (!pp) return;
    for (size_t i = 0; i < pp->nsubs; i++) qfmt__tk_post_processor_free(pp->subs[i]);
    free(pp->subs);
    qfmt__tk_ids_free(&pp->tmpl);
    free(pp);
}

/* ---- Running ------------------------------------------------------------------------------ */
static int expand(const tk_ids *tmpl, const int32_t *ids, size_t n, tk_ids *out)
{
    for (size_t i = 0; i < tmpl->n; i++) {
        if (tmpl->v[i] != SEQ) {
            if (qfmt__tk_ids_push(out, tmpl->v[i]) < 0) return -1;
            continue;
        }
        for (size_t k = 0; k < n; k++)
            if (qfmt__tk_ids_push(out, ids[k]) < 0) return -1;
    }
    return 0;
}

/* Runs pp over *cur (result left in *cur); *tmp is scratch. Depth bounded at load. */
static int apply(const tk_post_processor *pp, tk_ids *cur, tk_ids *tmp)
{
    if (pp->sequence) {
        for (size_t i = 0; i < pp->nsubs; i++)
            if (apply(pp->subs[i], cur, tmp) < 0) return -1;
        return 0;
    }
    tmp->n = 0;
    if (expand(&pp->tmpl, cur->v, cur->n, tmp) < 0) return -1;
    tk_ids t = *cur;
    *cur = *tmp;
    *tmp = t;
    return 0;
}

int qfmt__tk_post_process(const tk_post_processor *pp, const int32_t *ids, size_t n, tk_ids *out, qfmt_error *err)
{
    tk_ids cur = {0}, tmp = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) rc = qfmt__tk_ids_push(&cur, ids[i]);
    if (rc == 0) rc = apply(pp, &cur, &tmp);
    out->n = 0;
    for (size_t i = 0; i < cur.n && rc == 0; i++) rc = qfmt__tk_ids_push(out, cur.v[i]);
    qfmt__tk_ids_free(&cur);
    qfmt__tk_ids_free(&tmp);
    return rc < 0 ? TK_OOM(err) : 0;
}

/* ---- Loading ------------------------------------------------------------------------------ */
/* A JSON id: an integer in 0..max_id-1. */
static int json_id(const cJSON *x, uint32_t max_id, int32_t *id, const char *where, qfmt_error *err)
{
    double d = cJSON_IsNumber(x) ? x->valuedouble : -1;
    if (!(d >= 0 && d < (double)max_id && d < (double)TK_MAX_IDS && d == (double)(int32_t)d))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s is not an id in 0..%u", where, max_id ? max_id - 1 : 0);
    *id = (int32_t)d;
    return 0;
}

/* Bert / Roberta: "cls" and "sep" are [token, id]; the single template is cls A sep. */
static int pair_id(const cJSON *j, const char *key, uint32_t max_id, int32_t *id, const char *where,
                   qfmt_error *err)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, key);
    char w[200];
    snprintf(w, sizeof w, "%s.%s[1]", where, key);
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) != 2 || !cJSON_IsString(cJSON_GetArrayItem(x, 0)))
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not a [token, id] pair", where, key);
    return json_id(cJSON_GetArrayItem(x, 1), max_id, id, w, err);
}

static int load_bert(const cJSON *j, uint32_t max_id, tk_post_processor *pp, const char *where, qfmt_error *err)
{
    int32_t cls, sep;
    if (pair_id(j, "cls", max_id, &cls, where, err) < 0 || pair_id(j, "sep", max_id, &sep, where, err) < 0) return -1;
    if (qfmt__tk_ids_push(&pp->tmpl, cls) < 0 || qfmt__tk_ids_push(&pp->tmpl, SEQ) < 0 || qfmt__tk_ids_push(&pp->tmpl, sep) < 0)
        return TK_OOM(err);
    return 0;
}

/* special_tokens: {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}, ...}: every entry
 * checked (ids in range, as many tokens as ids), whichever template uses it. */
static int check_special_tokens(const cJSON *sp, uint32_t max_id, const char *where, qfmt_error *err)
{
    if (!cJSON_IsObject(sp)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.special_tokens is not an object", where);
    const cJSON *e;
    cJSON_ArrayForEach(e, sp)
    {
        char w[240], shown[80];
        qfmt_escape(e->string, strlen(e->string) < 60 ? strlen(e->string) : 60, shown, sizeof shown);
        snprintf(w, sizeof w, "%s.special_tokens['%s']", where, shown);
        const cJSON *ids = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "ids") : NULL;
        const cJSON *toks = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "tokens") : NULL;
        if (!cJSON_IsArray(ids) || !cJSON_IsArray(toks))
            return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s is not an object with arrays 'ids' and 'tokens'", w);
        if (cJSON_GetArraySize(ids) != cJSON_GetArraySize(toks))
            return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: ids and tokens differ in length", w);
        const cJSON *x;
        size_t k = 0;
        cJSON_ArrayForEach(x, ids)
        {
            char wi[260];
            int32_t id;
            snprintf(wi, sizeof wi, "%s.ids[%zu]", w, k++);
            if (json_id(x, max_id, &id, wi, err) < 0) return -1;
        }
    }
    return 0;
}

/* One template piece: {"SpecialToken": {"id": s, "type_id": n}} appends the entry's ids (to
 * out, when not NULL); {"Sequence": {"id": "A"|"B", "type_id": n}} appends SEQ. */
static int load_piece(const cJSON *p, const cJSON *sp, bool single, tk_ids *out, const char *w, qfmt_error *err)
{
    const cJSON *st = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "SpecialToken") : NULL;
    const cJSON *sq = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "Sequence") : NULL;
    const cJSON *body = st ? st : sq;
    const cJSON *id = cJSON_IsObject(body) ? cJSON_GetObjectItemCaseSensitive(body, "id") : NULL;
    uint64_t type_id;
    if ((st && sq) || !cJSON_IsString(id) || !id->valuestring)
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s is not {\"SpecialToken\": {...}} or {\"Sequence\": {...}}", w);
    if (qfmt__tk_json_uint(body, "type_id", 0, UINT32_MAX, &type_id, w, err) < 0) return -1;
    if (sq) {
        bool a = strcmp(id->valuestring, "A") == 0;
        if (!a && strcmp(id->valuestring, "B") != 0)
            return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: sequence id is not A or B", w);
        /* HF fails on $B in the single template (it has one sequence) */
        if (single && !a) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: the single template uses sequence B", w);
        return out && qfmt__tk_ids_push(out, SEQ) < 0 ? TK_OOM(err) : 0;
    }
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(sp, id->valuestring);
    if (!e) {
        char shown[80];
        size_t l = strlen(id->valuestring);
        qfmt_escape(id->valuestring, l < 60 ? l : 60, shown, sizeof shown);
        return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s: special token '%s' is not in special_tokens", w, shown);
    }
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(e, "ids"))
    {
        if (out && qfmt__tk_ids_push(out, (int32_t)x->valuedouble) < 0) return TK_OOM(err); /* checked above */
    }
    return 0;
}

static int load_template_list(const cJSON *j, const char *key, const cJSON *sp, tk_ids *out, const char *where,
                              qfmt_error *err)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, key);
    bool single = out != NULL;
    if (!single && (!t || cJSON_IsNull(t))) return 0;
    if (cJSON_IsString(t))
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s.%s: a template written as a string is not supported", where, key);
    if (!cJSON_IsArray(t)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.%s is not an array", where, key);
    const cJSON *p;
    size_t k = 0;
    cJSON_ArrayForEach(p, t)
    {
        char w[200];
        snprintf(w, sizeof w, "%s.%s[%zu]", where, key, k++);
        if (load_piece(p, sp, single, out, w, err) < 0) return -1;
    }
    return 0;
}

static int load_template(const cJSON *j, uint32_t max_id, tk_post_processor *pp, const char *where,
                         qfmt_error *err)
{
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(j, "special_tokens");
    if (check_special_tokens(sp, max_id, where, err) < 0) return -1;
    if (load_template_list(j, "single", sp, &pp->tmpl, where, err) < 0) return -1;
    return load_template_list(j, "pair", sp, NULL, where, err);
}

static int load_any(const cJSON *j, uint32_t max_id, const char *where, int depth, tk_post_processor **out,
                    qfmt_error *err);

static int load_sequence(const cJSON *j, uint32_t max_id, tk_post_processor *pp, const char *where, int depth,
                         qfmt_error *err)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "processors");
    pp->sequence = true;
    if (!cJSON_IsArray(arr)) return qfmt__tk_fail(err, QFMT_E_CORRUPT, "%s.processors is not an array", where);
    if (depth >= TK_MAX_DEPTH)
        return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: Sequence nested deeper than %d", where, TK_MAX_DEPTH);
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n && !(pp->subs = calloc(n, sizeof *pp->subs))) return TK_OOM(err);
    const cJSON *x;
    cJSON_ArrayForEach(x, arr)
    {
        if (pp->nsubs >= n) break;
        char w[200];
        snprintf(w, sizeof w, "%s.processors[%zu]", where, pp->nsubs);
        if (load_any(x, max_id, w, depth + 1, &pp->subs[pp->nsubs], err) < 0) return -1;
        pp->nsubs++;
    }
    return 0;
}

static int load_fields(const cJSON *j, const char *type, uint32_t max_id, tk_post_processor *pp, const char *where,
                       int depth, qfmt_error *err)
{
    if (strcmp(type, "TemplateProcessing") == 0) return load_template(j, max_id, pp, where, err);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return load_bert(j, max_id, pp, where, err);
    if (strcmp(type, "ByteLevel") == 0) /* offsets only: the ids pass through */
        return qfmt__tk_ids_push(&pp->tmpl, SEQ) < 0 ? TK_OOM(err) : 0;
    if (strcmp(type, "Sequence") == 0) return load_sequence(j, max_id, pp, where, depth, err);
    char shown[80];
    qfmt_escape(type, strlen(type) < 60 ? strlen(type) : 60, shown, sizeof shown);
    return qfmt__tk_fail(err, QFMT_E_UNSUPPORTED, "%s: type '%s' is not supported", where, shown);
}

static int load_any(const cJSON *j, uint32_t max_id, const char *where, int depth, tk_post_processor **out,
                    qfmt_error *err)
{
    *out = NULL;
    const char *type = qfmt__tk_json_type(j, where, err);
    if (!type) return -1;
    tk_post_processor *pp = calloc(1, sizeof *pp);
    if (!pp) return TK_OOM(err);
    if (load_fields(j, type, max_id, pp, where, depth, err) < 0) {
        qfmt__tk_post_processor_free(pp);
        return -1;
    }
    *out = pp;
    return 0;
}

int qfmt__tk_post_processor_load(const cJSON *j, uint32_t max_id, tk_post_processor **out, qfmt_error *err)
{
    return load_any(j, max_id, "post_processor", 0, out, err);
}
