/* llama.cpp's names for the families' tensors (llama-arch.cpp's LLM_TENSOR_NAMES) and
 * architectures (general.architecture of a GGUF file), both ways: what an imatrix file, a GGUF
 * import and a GGUF export need. A tensor's GGUF name follows from its slot in the family's
 * table (family.h): the slot says what the tensor is, whatever Hugging Face calls it. */
#include <stdio.h>
#include <string.h>

#include "family.h"

/* The GGUF base name of a slot ("blk.%u." is prepended to the per-layer ones); NULL: none. */
static const char *slot_gguf(const qfmt_family *f, uint8_t slot)
{
    bool bert = f == &qfmt__family_bert;
    switch (slot) {
    case QFMT__L_LN1: return bert ? "attn_output_norm" : "attn_norm";
    case QFMT__L_LN2: return bert ? "layer_output_norm" : "ffn_norm";
    case QFMT__L_Q: return "attn_q";
    case QFMT__L_K: return "attn_k";
    case QFMT__L_V: return "attn_v";
    case QFMT__L_O: return "attn_output";
    case QFMT__L_GATE: return "ffn_gate";
    case QFMT__L_UP: return "ffn_up";
    case QFMT__L_DOWN: return "ffn_down";
    case QFMT__L_QNORM: return "attn_q_norm";
    case QFMT__L_KNORM: return "attn_k_norm";
    case QFMT__L_QKV: return "attn_qkv";
    case QFMT__L_GATE_UP: return "ffn_up"; /* Phi-3: llama.cpp keeps gate|up fused as ffn_up */
    case QFMT__L_POST_ATTN: return "post_attention_norm";
    case QFMT__L_POST_MLP: return "post_ffw_norm";
    case QFMT__M_TOK: return "token_embd";
    case QFMT__M_POS: return "position_embd";
    case QFMT__M_TYPE: return "token_types";
    case QFMT__M_HEAD: return "output";
    case QFMT__M_FINAL_NORM: return "output_norm";
    case QFMT__M_EMB_NORM: return "token_embd_norm";
    default: return NULL; /* BERT's MLM head: llama.cpp's bert has none */
    }
}

static bool is_layer_slot(uint8_t slot) { return slot >= QFMT__L_LN1 && slot < QFMT__M_TOK; }

const char *qfmt_family_gguf_arch(const qfmt_family *f)
{
    if (!f) return NULL;
    if (f == &qfmt__family_mistral) return "llama"; /* convert_hf_to_gguf writes Mistral as llama */
    if (f == &qfmt__family_gemma3) return "gemma3";
    return f->name; /* gpt2, llama, bert, qwen2, qwen3, gemma2, phi3 */
}

/* `name` = pattern (with one "%u" for per-layer specs) + suffix: the layer in *layer, the
 * suffix (".weight", ".bias" or "") in *suffix. */
static bool split_name(const qfmt__tensor_spec *t, bool per_layer, const char *name, unsigned *layer,
                       const char **suffix)
{
    const char *pat = t->name, *u = per_layer ? strstr(pat, "%u") : NULL;
    size_t pre = u ? (size_t)(u - pat) : strlen(pat);
    if (strncmp(name, pat, pre) != 0) return false;
    const char *p = name + pre;
    *layer = 0;
    if (u) {
        if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9')) return false;
        unsigned long v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (unsigned long)(*p++ - '0');
            if (v > 1000000) return false;
        }
        *layer = (unsigned)v;
        size_t post = strlen(u + 2);
        if (strncmp(p, u + 2, post) != 0) return false;
        p += post;
    }
    if (t->kind == QFMT__FT_VECTOR ? *p != '\0' : strcmp(p, ".weight") != 0 && strcmp(p, ".bias") != 0) return false;
    *suffix = p;
    return true;
}

static qfmt_status gguf_of(const qfmt_family *f, const char *name, char *out, size_t cap)
{
    for (int pass = 0; pass < 2; pass++) {
        const qfmt__tensor_spec *specs = pass == 0 ? f->layer : f->model;
        for (const qfmt__tensor_spec *t = specs; t->name; t++) {
            unsigned layer;
            const char *suffix;
            if (!split_name(t, pass == 0, name, &layer, &suffix)) continue;
            const char *g = slot_gguf(f, t->slot);
            if (!g) return QFMT_E_NOT_FOUND;
            int n = is_layer_slot(t->slot) ? snprintf(out, cap, "blk.%u.%s%s", layer, g, suffix)
                                           : snprintf(out, cap, "%s%s", g, suffix);
            return n > 0 && (size_t)n < cap ? QFMT_OK : QFMT_E_RANGE;
        }
    }
    return QFMT_E_NOT_FOUND;
}

qfmt_status qfmt_family_gguf_name(const qfmt_family *f, const char *hf_name, char *out, size_t cap)
{
    if (!f || !hf_name || !out || cap == 0) return QFMT_E_ARG;
    out[0] = '\0';
    qfmt_status s = gguf_of(f, hf_name, out, cap);
    if (s == QFMT_E_NOT_FOUND && f->strip_prefix) { /* saved without the base-model prefix */
        char full[512];
        if (snprintf(full, sizeof full, "%s%s", f->strip_prefix, hf_name) < (int)sizeof full)
            s = gguf_of(f, full, out, cap);
    }
    return s;
}

qfmt_status qfmt_family_hf_name(const qfmt_family *f, const char *gguf_name, char *out, size_t cap)
{
    if (!f || !gguf_name || !out || cap == 0) return QFMT_E_ARG;
    out[0] = '\0';
    unsigned layer = 0;
    const char *base = gguf_name;
    bool per_layer = strncmp(gguf_name, "blk.", 4) == 0;
    if (per_layer) {
        const char *p = gguf_name + 4;
        if (*p < '0' || *p > '9') return QFMT_E_NOT_FOUND;
        unsigned long v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (unsigned long)(*p++ - '0');
            if (v > 1000000) return QFMT_E_NOT_FOUND;
        }
        if (*p != '.') return QFMT_E_NOT_FOUND;
        layer = (unsigned)v;
        base = p + 1;
    }
    const char *dot = strrchr(base, '.');
    const char *suffix = dot && (strcmp(dot, ".weight") == 0 || strcmp(dot, ".bias") == 0) ? dot : "";
    size_t blen = strlen(base) - strlen(suffix);
    const qfmt__tensor_spec *specs = per_layer ? f->layer : f->model;
    for (const qfmt__tensor_spec *t = specs; t->name; t++) {
        const char *g = slot_gguf(f, t->slot);
        if (!g || strlen(g) != blen || strncmp(g, base, blen) != 0) continue;
        if (t->kind == QFMT__FT_VECTOR ? *suffix != '\0' : *suffix == '\0') continue;
        char hf[256];
        int n = per_layer ? snprintf(hf, sizeof hf, t->name, layer) : snprintf(hf, sizeof hf, "%s", t->name);
        if (n <= 0 || (size_t)n >= sizeof hf) return QFMT_E_RANGE;
        n = snprintf(out, cap, "%s%s", hf, suffix);
        return n > 0 && (size_t)n < cap ? QFMT_OK : QFMT_E_RANGE;
    }
    return QFMT_E_NOT_FOUND;
}
