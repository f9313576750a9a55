#!/usr/bin/env python3
"""Measures, for each fixture and quantization type, what users choose by: file size, bits per
weight, perplexity (exact path) and its change from f32, the KL divergence of the token
distributions from f32's (mean, 99th percentile) and the share of positions whose top token is
f32's, perplexity on the fast path, and weight RMSE over the tensors the default policy
quantizes. Rows: ggml's types, qfmt's z types, llama.cpp's mixes (q4_k_m, q5_k_m) and types
quantized with an importance matrix from `qfmt calibrate` over the training text
(train.txt.zst, 200 windows of 128 tokens, as llama-imatrix was run for ggml-quants/).
Prints a Markdown table per fixture (the README's).

usage: python3 scripts/quality_table.py [--qfmt build/release/tools/qfmt] [--threads N]
                                        [--fixtures gpt2-kjv,llama-kjv,...]
Uses only tests/data/fixtures and the qfmt CLI (and the zstd tool for the packed fixtures);
writes scratch files under a temp dir."""
import argparse, json, math, os, shutil, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "data", "fixtures")
# fixture: tokenizer of a packed one (None: a plain checkpoint directory), held-out tokens
FIXTURES = {
    "gpt2-kjv": (None, "heldout.safetensors"),
    "llama-kjv": (None, "heldout.safetensors"),
    "bert-kjv": (None, "heldout.safetensors"),
    "llama3-kjv": (None, "heldout.safetensors"),
    "qwen3-kjv": ("tokenizers/qwen3.tokenizer.json.zst", "heldout.qwen3.safetensors"),
    "gemma3-kjv": ("tokenizer.json", "heldout.safetensors"),
    "phi3-kjv": ("tokenizer.json", "heldout.safetensors"),
}
# label, convert arguments, uses the imatrix
ROWS = [("f32", ["--type", "f32"], False), ("STORED", None, False), ("q8_0", ["--type", "q8_0"], False),
        ("q6_k", ["--type", "q6_k"], False), ("q5_k_m", ["--type", "q5_k_m"], False),
        ("q5_k", ["--type", "q5_k"], False), ("q5_1", ["--type", "q5_1"], False),
        ("q5_0", ["--type", "q5_0"], False), ("q4_k_m", ["--type", "q4_k_m"], False),
        ("q4_k", ["--type", "q4_k"], False), ("q4_1", ["--type", "q4_1"], False),
        ("q4_0", ["--type", "q4_0"], False), ("iq4_xs", ["--type", "iq4_xs"], False),
        ("iq4_nl", ["--type", "iq4_nl"], False), ("q3_k", ["--type", "q3_k"], False),
        ("q2_k", ["--type", "q2_k"], False), ("q8_z", ["--type", "q8_z"], False),
        ("q4_z", ["--type", "q4_z"], False), ("q4_0 best", ["--type", "q4_0", "--quality", "best"], False),
        ("q4_k_m imatrix", ["--type", "q4_k_m"], True), ("q4_k imatrix", ["--type", "q4_k"], True),
        ("iq4_xs imatrix", ["--type", "iq4_xs"], True), ("q4_0 imatrix", ["--type", "q4_0"], True),
        ("q3_k imatrix", ["--type", "q3_k"], True), ("q2_k imatrix", ["--type", "q2_k"], True)]


def st_load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    base = 8 + n
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        lo, hi = v["data_offsets"]
        out[k] = (v["dtype"], v["shape"], b[base + lo:base + hi])
    return out


def floats(dtype, raw):
    if dtype == "F32":
        return struct.unpack("<%df" % (len(raw) // 4), raw)
    if dtype == "BF16":
        u = struct.unpack("<%dH" % (len(raw) // 2), raw)
        return [struct.unpack("<f", struct.pack("<I", x << 16))[0] for x in u]
    if dtype == "F16":
        return struct.unpack("<%de" % (len(raw) // 2), raw)
    raise ValueError(dtype)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("failed: %s\n%s" % (" ".join(cmd), r.stderr))
    return r.stdout


def checkpoint(name, tmp):
    """The fixture's checkpoint directory (packed ones unpacked into tmp)."""
    tok, _ = FIXTURES[name]
    src = os.path.join(FIX, name)
    if tok is None:
        return src
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    for f in ("config.json", "expected.json", "generation_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), d)
    for f in ("model", "reference"):
        run(["zstd", "-q", "-d", "-f", os.path.join(src, f + ".safetensors.zst"), "-o",
             os.path.join(d, f + ".safetensors")])
    if tok.endswith(".zst"):
        run(["zstd", "-q", "-d", "-f", os.path.join(FIX, tok), "-o", os.path.join(d, "tokenizer.json")])
    else:
        shutil.copy(os.path.join(FIX, tok), os.path.join(d, "tokenizer.json"))
    return d


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qfmt", default=os.path.join(ROOT, "build", "release", "tools", "qfmt"))
    ap.add_argument("--threads", default=str(os.cpu_count() or 1))
    ap.add_argument("--fixtures", default=",".join(FIXTURES))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qfmt-quality-")
    try:
        for model in a.fixtures.split(","):
            src = checkpoint(model, tmp)
            exp = json.load(open(os.path.join(src, "expected.json")))
            cfg = json.load(open(os.path.join(src, "config.json")))
            stored = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}[cfg.get("dtype") or cfg["torch_dtype"]]
            names = exp["quantized_tensors"]
            ref = st_load(os.path.join(src, "model.safetensors"))
            ref_vals = {n: floats(ref[n][0], ref[n][2]) for n in names}
            bert = model == "bert-kjv"
            mask = ["--mask", os.path.join(src, "mlm_mask.safetensors")] if bert else []
            heldout = os.path.join(FIX, FIXTURES[model][1])
            f32 = os.path.join(tmp, model + "-f32.qfmt")
            run([a.qfmt, "convert", src, "-o", f32, "--type", "f32", "--threads", a.threads])
            imatrix = os.path.join(tmp, model + ".imatrix.gguf")
            run([a.qfmt, "calibrate", f32, "--text", os.path.join(FIX, "train.txt.zst"), "--ctx", "128",
                 "--chunks", "200", "--threads", a.threads, "-o", imatrix])
            print("\n#### %s\n" % model)
            print("| type | file size | bits/weight | ppl (exact) | vs f32 | KL mean | KL p99 | same top | "
                  "ppl (fast) | weight RMSE |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            base = None
            for label, args, imat in ROWS:
                if args is None:  # the checkpoint's own dtype, when it is not f32
                    if stored == "f32":
                        continue
                    label, args = stored, ["--type", stored]
                out = os.path.join(tmp, "%s-%s.qfmt" % (model, label.replace(" ", "-")))
                conv = [a.qfmt, "convert", src, "-o", out, "--threads", a.threads] + args
                if imat:
                    conv += ["--imatrix", imatrix]
                line = run(conv)
                bpw = float(line.split(" bits/weight")[0].split(", ")[-1])
                ev = [a.qfmt, "eval", out, "--tokens", heldout, "--ctx", str(exp["eval_seq"]),
                      "--windows", str(exp["eval_windows"]), "--threads", a.threads, "--json"] + mask
                ex = json.loads(run(ev + ["--kl-base", f32]))
                fa = json.loads(run(ev + ["--fast"]))
                if base is None:
                    base = ex["perplexity"]
                back = os.path.join(tmp, "back.safetensors")
                run([a.qfmt, "dequantize", out, "-o", back, "--dtype", "f32"])
                got = st_load(back)
                se, n = 0.0, 0
                for nm in names:
                    g = floats("F32", got[nm][2])
                    for x, y in zip(ref_vals[nm], g):
                        se += (x - y) ** 2
                    n += len(g)
                kl = ex["kl"]
                print("| %s | %.2f MB | %.3f | %.4f | %+.2f%% | %.2e | %.2e | %.2f%% | %.4f | %.3g |" % (
                    label, os.path.getsize(out) / 1e6, bpw, ex["perplexity"],
                    100 * (ex["perplexity"] / base - 1), kl["mean"], kl["p99"], 100 * kl["same_top"],
                    fa["perplexity"], math.sqrt(se / n)))
                sys.stdout.flush()
    finally:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
