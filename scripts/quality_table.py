#!/usr/bin/env python3
"""Measures, for each fixture and quantization type, what users choose by: file size, bits per
weight, perplexity on the exact and the fast path and its change from f32, weight RMSE over the
quantized tensors, and eval speed. Prints a Markdown table per fixture (the README's).

usage: python3 scripts/quality_table.py [--qfmt build/release/tools/qfmt] [--threads N]
Uses only tests/data/fixtures and the qfmt CLI; writes scratch files under a temp dir."""
import argparse, json, math, os, struct, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "data", "fixtures")
CONFIGS = [("f32", []), ("f16", []), ("bf16", []), ("q8_0", []), ("q4_0", []), ("q4_1", []),
           ("q8_z", []), ("q4_z", []), ("q8_0 best", ["--quality", "best"]),
           ("q4_0 best", ["--quality", "best"]), ("q4_1 best", ["--quality", "best"])]


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qfmt", default=os.path.join(ROOT, "build", "release", "tools", "qfmt"))
    ap.add_argument("--threads", default=str(os.cpu_count() or 1))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="qfmt-quality-")
    try:
        for model in ("gpt2-kjv", "llama-kjv", "bert-kjv"):
            src = os.path.join(FIX, model)
            exp = json.load(open(os.path.join(src, "expected.json")))
            names = exp["quantized_tensors"]
            ref = st_load(os.path.join(src, "model.safetensors"))
            ref_vals = {n: floats(ref[n][0], ref[n][2]) for n in names}
            mask = ["--mask", os.path.join(src, "mlm_mask.safetensors")] if model == "bert-kjv" else []
            print("\n### %s\n" % model)
            print("| type | file size | bits/weight | ppl (exact) | vs f32 | ppl (fast) | weight RMSE | eval tok/s |")
            print("|---|---:|---:|---:|---:|---:|---:|---:|")
            base = None
            for label, extra in CONFIGS:
                t = label.split()[0]
                out = os.path.join(tmp, "%s-%s.qfmt" % (model, label.replace(" ", "-")))
                line = run([a.qfmt, "convert", src, "-o", out, "--type", t, "--threads", a.threads] + extra)
                bpw = float(line.split(" bits/weight")[0].split(", ")[-1])
                ev = [a.qfmt, "eval", out, "--tokens", os.path.join(FIX, "heldout.safetensors"),
                      "--ctx", str(exp["eval_seq"]), "--windows", str(exp["eval_windows"]),
                      "--threads", a.threads, "--json"] + mask
                ex = json.loads(run(ev))
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
                rmse = math.sqrt(se / n)
                print("| %s | %.2f MB | %.3f | %.4f | %+.2f%% | %.4f | %.3g | %.0f |" % (
                    label, os.path.getsize(out) / 1e6, bpw, ex["perplexity"],
                    100 * (ex["perplexity"] / base - 1), fa["perplexity"], rmse, ex["tokens_per_second"]))
                sys.stdout.flush()
    finally:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
