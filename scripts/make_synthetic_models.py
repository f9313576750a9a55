#!/usr/bin/env python3
"""Make small synthetic Hugging Face checkpoints (random weights) with reference
outputs computed by transformers, for qfmt's forward-pass tests.

Usage: python3 scripts/make_synthetic_models.py OUTDIR
       (force CPU: CUDA_VISIBLE_DEVICES= python3 scripts/make_synthetic_models.py OUTDIR)

Writes OUTDIR/<name>/{config.json, model.safetensors, reference.safetensors}
(and reference_short.safetensors for phi3-tiny) for gemma2-tiny, gemma3-tiny,
phi3-tiny, mistral-tiny, llama-yarn-tiny and qwen2-tiny.

Each model is built in memory from a transformers 5.x config (rope_parameters,
explicit layer_types), its weights are re-drawn from a fixed generator, it is
saved with save_pretrained, and config.json is then rewritten into the
transformers 4.x layout (top-level rope_theta, rope_scaling, torch_dtype, no
layer_types for Gemma 2/3). The checkpoint is reloaded from that rewritten
directory and its logits must match the in-memory model's (max abs diff
<= 1e-6); if a 4.x key is not read the same way, the 5.x form is kept for that
key only and the script says so. References come from the reloaded model.

reference.safetensors layout:
  input_ids  I32 [2, T]      random ids in [0, 256)
  logits     F32 [2, T, V]   fp32, eager attention, attention mask all ones, CPU
  hidden.i   F32 [T, hidden] output_hidden_states of sequence 0, i = 0..L
                             (hidden.L has the final norm applied)
"""
import copy
import json
import math
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModelForCausalLM

SEED = 1234
T_DEFAULT = 24
TOL = 1e-6


def log(*a):
    print(*a, flush=True)


# --------------------------------------------------------------------------
# model definitions (5.x-native configs)
# --------------------------------------------------------------------------

def specs():
    from transformers import (Gemma2Config, Gemma3TextConfig, LlamaConfig,
                              MistralConfig, Phi3Config, Qwen2Config)
    out = []

    out.append(dict(
        name="gemma2-tiny", family="gemma2", gemma_norm=True,
        make=lambda: Gemma2Config(
            vocab_size=256, hidden_size=64, num_hidden_layers=4,
            num_attention_heads=4, num_key_value_heads=2, head_dim=24,
            intermediate_size=96, max_position_embeddings=64,
            sliding_window=6, query_pre_attn_scalar=20,
            attn_logit_softcapping=4.0, final_logit_softcapping=2.5,
            rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
            tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            layer_types=["sliding_attention", "full_attention"] * 2,
        )))

    out.append(dict(
        name="gemma3-tiny", family="gemma3", gemma_norm=True,
        make=lambda: Gemma3TextConfig(
            vocab_size=256, hidden_size=96, num_hidden_layers=4,
            num_attention_heads=2, num_key_value_heads=1, head_dim=40,
            intermediate_size=128, max_position_embeddings=64,
            sliding_window=5, sliding_window_pattern=3,
            query_pre_attn_scalar=32, attn_logit_softcapping=None,
            final_logit_softcapping=5.0, rms_norm_eps=1e-6,
            hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 4.0,
                                   "rope_theta": 1000000.0},
                "sliding_attention": {"rope_type": "default",
                                      "rope_theta": 10000.0},
            },
            layer_types=["sliding_attention", "sliding_attention",
                         "full_attention", "sliding_attention"],
        )))

    out.append(dict(
        name="phi3-tiny", family="phi3", gemma_norm=False,
        make=lambda: Phi3Config(
            vocab_size=256, hidden_size=64, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, max_position_embeddings=64,
            original_max_position_embeddings=16, rms_norm_eps=1e-5,
            tie_word_embeddings=False, hidden_act="silu",
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
            rope_parameters={
                "rope_type": "longrope", "rope_theta": 10000.0,
                "partial_rotary_factor": 0.5,
                "short_factor": [1.0, 1.3, 2.1, 3.7],
                "long_factor": [1.5, 2.9, 6.1, 11.0],
            },
        )))

    out.append(dict(
        name="mistral-tiny", family="mistral", gemma_norm=False,
        make=lambda: MistralConfig(
            vocab_size=256, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=32,
            intermediate_size=128, max_position_embeddings=64,
            sliding_window=4, tie_word_embeddings=False, rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        )))

    out.append(dict(
        name="llama-yarn-tiny", family="llama", gemma_norm=False,
        make=lambda: LlamaConfig(
            vocab_size=256, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=1, head_dim=24,
            intermediate_size=96, max_position_embeddings=64,
            attention_bias=True, mlp_bias=True, tie_word_embeddings=False,
            rms_norm_eps=1e-5,
            rope_parameters={"rope_type": "yarn", "rope_theta": 10000.0,
                             "factor": 2.0,
                             "original_max_position_embeddings": 16},
        )))

    out.append(dict(
        name="qwen2-tiny", family="qwen2", gemma_norm=False,
        make=lambda: Qwen2Config(
            vocab_size=300, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, max_position_embeddings=64,
            tie_word_embeddings=True, use_sliding_window=False,
            rms_norm_eps=1e-6,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        )))
    return out


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def redraw(model, gemma_norm, gen, lin_std=0.08):
    with torch.no_grad():
        for name, p in model.named_parameters():  # tied params appear once
            if name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif p.dim() == 1:  # norm weights
                if gemma_norm:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
                else:
                    p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * lin_std)


def from_config(cfg):
    try:
        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                             dtype=torch.float32)
    except TypeError:
        m = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager",
                                             torch_dtype=torch.float32)
    return m.float().eval()


def forward(model, ids):
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=torch.ones_like(ids),
                  output_hidden_states=True, use_cache=False)
    return o.logits.float(), [h.float() for h in o.hidden_states]


def load(d, config=None):
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    if config is not None:
        kw["config"] = config
    m = AutoModelForCausalLM.from_pretrained(d, **kw)
    m.eval()
    return m


def to_4x(d5, family, keep):
    """Rewrite a 5.x config dict into the 4.x layout; keys in `keep` keep their 5.x form."""
    d = copy.deepcopy(d5)
    if "dtype" in d:
        d["torch_dtype"] = d.pop("dtype")
    if "rope_parameters" not in keep:
        rp = d.pop("rope_parameters")
        if family == "gemma3":
            full = dict(rp["full_attention"])
            slide = dict(rp["sliding_attention"])
            d["rope_theta"] = full.pop("rope_theta")
            d["rope_local_base_freq"] = slide.pop("rope_theta")
            full.pop("partial_rotary_factor", None)
            if full.get("rope_type", "default") != "default":
                d["rope_scaling"] = full
            else:
                d["rope_scaling"] = None
        else:
            rp = dict(rp)
            d["rope_theta"] = rp.pop("rope_theta")
            prf = rp.pop("partial_rotary_factor", None)
            if family == "phi3":
                d["partial_rotary_factor"] = prf if prf is not None else 1.0
                omp = rp.pop("original_max_position_embeddings", None)
                if omp is not None:
                    d["original_max_position_embeddings"] = omp
                rt = rp.pop("rope_type", "default")
                if rt != "default":
                    d["rope_scaling"] = {"type": rt, **rp}
                else:
                    d["rope_scaling"] = None
            else:
                if rp.get("rope_type", "default") != "default" or len(rp) > 1:
                    d["rope_scaling"] = rp
                else:
                    d["rope_scaling"] = None
    if family in ("gemma2", "gemma3") and "layer_types" not in keep:
        d.pop("layer_types", None)
    if family == "gemma3":
        d["sliding_window_pattern"] = 3
    return d


def write_json(path, d):
    with open(path, "w") as f:
        json.dump(d, f, indent=2, sort_keys=True)
        f.write("\n")


def rotary_report(model):
    lines = []
    for name, mod in model.named_modules():
        if "rotary" not in type(mod).__name__.lower() and "rotary" not in name:
            continue
        attrs = {}
        for a in ("rope_type", "attention_scaling", "layer_types",
                  "original_max_seq_len", "max_seq_len_cached"):
            if hasattr(mod, a):
                attrs[a] = getattr(mod, a)
        for k in dir(mod):
            if k.endswith("attention_scaling") and k != "attention_scaling":
                attrs[k] = getattr(mod, k)
            if k.endswith("rope_type") and k != "rope_type":
                attrs[k] = getattr(mod, k)
        lines.append(f"  module {name or '<root>'} ({type(mod).__name__}) {attrs}")
        for bname, b in mod.named_buffers(recurse=False):
            if b is None or b.dim() != 1:
                continue
            b = b.double()
            dim = 2 * b.numel()
            s = f"    buffer {bname}: n={b.numel()} first={b[:4].tolist()}"
            if b.numel() >= 2 and b[0] > 0 and b[1] > 0:
                base = (b[1] / b[0]).item() ** (-dim / 2)
                s += f" base(from ratio)={base:.6g} 1/inv_freq[0]={1.0 / b[0].item():.6g}"
            lines.append(s)
    return lines


def summarize(logits, ids):
    T = ids.shape[1]
    pos = [0, T // 2, T - 1]
    top = {f"seq{s}@{p}": int(logits[s, p].argmax()) for s in (0, 1) for p in pos}
    return float(logits.abs().max()), top


def save_reference(path, ids, logits, hidden):
    t = {"input_ids": ids.to(torch.int32).contiguous(),
         "logits": logits.to(torch.float32).contiguous()}
    for i, h in enumerate(hidden):
        t[f"hidden.{i}"] = h[0].to(torch.float32).contiguous()
    save_file(t, path)


def maxdiff(a, b):
    return float((a - b).abs().max())


# --------------------------------------------------------------------------

def build_one(spec, outdir, results):
    name, family = spec["name"], spec["family"]
    d = os.path.join(outdir, name)
    tmp5 = os.path.join(outdir, "_tmp5_" + name)
    for p in (d, tmp5):
        shutil.rmtree(p, ignore_errors=True)
    log(f"\n===== {name} =====")
    torch.manual_seed(SEED)
    cfg = spec["make"]()
    model = from_config(cfg)
    model.eval()
    log("in-memory attn_implementation:", model.config._attn_implementation)
    log("in-memory rope_parameters:", getattr(model.config, "rope_parameters", None))
    log("in-memory layer_types:", getattr(model.config, "layer_types", None))

    gen_ids = torch.Generator().manual_seed(SEED + 1)
    T = T_DEFAULT
    ids = torch.randint(0, 256, (2, T), generator=gen_ids)
    ids_short = ids[:, :12].clone() if family == "phi3" else None

    lin_std = 0.08
    gen_w = torch.Generator().manual_seed(SEED + 2)
    redraw(model, spec["gemma_norm"], gen_w, lin_std)
    logits_mem, _ = forward(model, ids)

    # gemma2: soft-capping must bite; raise std if needed
    if family == "gemma2":
        while True:
            cfg_nc = copy.deepcopy(model.config)
            cfg_nc.attn_logit_softcapping = None
            cfg_nc.final_logit_softcapping = None
            m_nc = from_config(cfg_nc)
            m_nc.load_state_dict(model.state_dict())
            m_nc.eval()
            lg_nc, _ = forward(m_nc, ids)
            ch = maxdiff(lg_nc, logits_mem)
            log(f"[pre-check] gemma2 softcap change at std {lin_std}: {ch:.6g}")
            if ch > 0.1 or lin_std > 1.0:
                break
            lin_std *= 1.5
            gen_w = torch.Generator().manual_seed(SEED + 2)
            redraw(model, spec["gemma_norm"], gen_w, lin_std)
            logits_mem, _ = forward(model, ids)
        results[name + ".linear_std"] = lin_std

    model.save_pretrained(tmp5)
    with open(os.path.join(tmp5, "config.json")) as f:
        d5 = json.load(f)
    log("5.x saved config.json:", json.dumps(d5, sort_keys=True))

    attempts = [set(), {"layer_types"}, {"rope_parameters"},
                {"rope_parameters", "layer_types"}]
    chosen = None
    for keep in attempts:
        if keep and family not in ("gemma2", "gemma3") and "layer_types" in keep:
            continue
        d4 = to_4x(d5, family, keep)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        shutil.copy(os.path.join(tmp5, "model.safetensors"), os.path.join(d, "model.safetensors"))
        write_json(os.path.join(d, "config.json"), d4)
        try:
            m4 = load(d)
            lg4, hid4 = forward(m4, ids)
            diff = maxdiff(lg4, logits_mem)
        except Exception as e:  # noqa
            log(f"reload with 5.x keys kept={sorted(keep)} FAILED: {type(e).__name__}: {e}")
            continue
        log(f"reload (5.x keys kept={sorted(keep)}): logits max abs diff vs in-memory = {diff:.3g}")
        if diff <= TOL:
            chosen = keep
            break
        log("  -> MISMATCH; reloaded rope_parameters:",
            getattr(m4.config, "rope_parameters", None),
            "layer_types:", getattr(m4.config, "layer_types", None))
    if chosen is None:
        raise SystemExit(f"{name}: no 4.x variant reloads identically")
    results[name + ".kept_5x_keys"] = sorted(chosen)
    results[name + ".reload_diff"] = diff
    log("4.x config.json written:", json.dumps(d4, sort_keys=True))
    log("reloaded rope_parameters:", getattr(m4.config, "rope_parameters", None))
    log("reloaded layer_types:", getattr(m4.config, "layer_types", None))
    log("reloaded sliding_window:", getattr(m4.config, "sliding_window", None))
    for line in rotary_report(m4):
        log(line)

    mx, top = summarize(lg4, ids)
    log(f"max |logit| = {mx:.6g}; top-1: {top}")
    results[name + ".max_abs_logit"] = mx
    results[name + ".top1"] = top
    save_reference(os.path.join(d, "reference.safetensors"), ids, lg4, hid4)
    log(f"hidden states saved: {len(hid4)} (L={m4.config.num_hidden_layers}), "
        f"logits shape {tuple(lg4.shape)}")

    # probe: does a changed 4.x rope_theta / rope_local_base_freq reach the config?
    probe = os.path.join(outdir, "_probe_" + name)
    shutil.rmtree(probe, ignore_errors=True)
    os.makedirs(probe)
    dp = copy.deepcopy(d4)
    if "rope_theta" in dp:
        dp["rope_theta"] = 123456.0
    if "rope_local_base_freq" in dp:
        dp["rope_local_base_freq"] = 23456.0
    write_json(os.path.join(probe, "config.json"), dp)
    cp = AutoConfig.from_pretrained(probe)
    log("probe (rope_theta->123456, rope_local_base_freq->23456) rope_parameters:",
        getattr(cp, "rope_parameters", None))
    shutil.rmtree(probe, ignore_errors=True)

    # family-specific checks
    if family == "gemma2":
        c = copy.deepcopy(m4.config)
        c.attn_logit_softcapping = None
        c.final_logit_softcapping = None
        lg, _ = forward(load(d, c), ids)
        v = maxdiff(lg, lg4)
        log(f"CHECK gemma2: max abs logit change without soft-capping = {v:.6g}")
        results["gemma2.softcap_change"] = v
        c = copy.deepcopy(m4.config)
        c.attn_logit_softcapping = None
        lg, _ = forward(load(d, c), ids)
        v = maxdiff(lg, lg4)
        log(f"CHECK gemma2: change without attn soft-capping only = {v:.6g}")
        results["gemma2.attn_softcap_change"] = v
        c = copy.deepcopy(m4.config)
        c.sliding_window = 64
        lg, _ = forward(load(d, c), ids)
        v = maxdiff(lg, lg4)
        log(f"CHECK gemma2: change with sliding_window=64 = {v:.6g}")
        results["gemma2.window_change"] = v
    if family == "gemma3":
        log("CHECK gemma3: layer_types derived =", m4.config.layer_types)
        results["gemma3.layer_types"] = list(m4.config.layer_types)
        c = copy.deepcopy(m4.config)
        c.sliding_window = 64
        lg, _ = forward(load(d, c), ids)
        v = maxdiff(lg, lg4)
        log(f"CHECK gemma3: max abs logit change with sliding_window=64 = {v:.6g}")
        results["gemma3.window_change"] = v
    if family == "phi3":
        rot = m4.model.rotary_emb
        log("CHECK phi3: rotary_emb.attention_scaling =", getattr(rot, "attention_scaling", None))
        results["phi3.attention_scaling"] = float(getattr(rot, "attention_scaling", float("nan")))
        om = m4.config.original_max_position_embeddings
        f = m4.config.max_position_embeddings / om
        log(f"  (formula sqrt(1 + ln({f})/ln({om})) = {math.sqrt(1 + math.log(f) / math.log(om)):.9g})")
        lgs, hids = forward(m4, ids_short)
        save_reference(os.path.join(d, "reference_short.safetensors"), ids_short, lgs, hids)
        v = maxdiff(lgs, lg4[:, :12])
        log(f"CHECK phi3: max abs diff of logits[:, :12], T=24 run vs T=12 run = {v:.6g}")
        results["phi3.long_vs_short_diff"] = v
        mxs, tops = summarize(lgs, ids_short)
        log(f"phi3 short run: max |logit| = {mxs:.6g}; top-1: {tops}")
        results["phi3.short_max_abs_logit"] = mxs
        results["phi3.short_top1"] = tops
    if family == "mistral":
        c = copy.deepcopy(m4.config)
        c.sliding_window = None
        lg, _ = forward(load(d, c), ids)
        v = maxdiff(lg, lg4)
        log(f"CHECK mistral: max abs logit change with sliding_window=None = {v:.6g}")
        results["mistral.window_change"] = v

    shutil.rmtree(tmp5, ignore_errors=True)
    for fn in sorted(os.listdir(d)):
        log(f"  {name}/{fn}: {os.path.getsize(os.path.join(d, fn))} bytes")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    log(f"transformers {transformers.__version__}, torch {torch.__version__}, "
        f"python {sys.version.split()[0]}, cuda visible: {torch.cuda.is_available()}")
    results = {}
    failed = []
    for spec in specs():
        try:
            build_one(spec, outdir, results)
        except BaseException:  # keep going so one run reports on every model
            import traceback
            traceback.print_exc()
            failed.append(spec["name"])
    log("\nRESULTS " + json.dumps(results, sort_keys=True))
    if failed:
        raise SystemExit(f"FAILED: {failed}")


if __name__ == "__main__":
    main()
