#!/usr/bin/env python3
"""qfmt and llama.cpp side by side on the same weights, in one run (not part of the test run).

For each type, the model is converted by `qfmt convert` and the .qfmt file exported by
`qfmt export` to GGUF, so both runtimes read the same tensor bytes. Then, for each thread count
in turn, bench_run measures qfmt's fast path on the .qfmt file (prompt, then greedy generation,
best of --repeat, with the read-bandwidth bound it measures just before) and node-llama-cpp's
prebuilt llama.cpp (npm, pinned 3.21.1; bench/llamacpp_speed.mjs) runs the GGUF on the same
prompt token ids, the same thread count and the same counts of tokens, its figures taken from
llama.cpp's own timings. Prints a table with each figure beside its peer, the ratio and the bound;
--json writes one object per (type, threads).

  bench/side_by_side.py [--dir DIR | --source HF_DIR] [--types f16,q8_0,q4_0,q4_k_m]
                        [--threads 1,2] [--prompt 64] [--gen 32] [--repeat 2] [--json OUT]
                        [--qfmt BIN] [--bench-run BIN] [--node-dir DIR] [--convert-arg ARG]...

--dir DIR (default /tmp/qfmt-side-by-side): where the model lives; without --source a
TinyLlama-1.1B-shaped random BF16 model (2.2 GB) is synthesised there by bench_run, with the
Llama 2 tokenizer from tests/data (llama.cpp needs one to load a file). --source: a Hugging Face
checkpoint directory instead. --convert-arg: passed to every `qfmt convert` (for example
--convert-arg=--quantize --convert-arg=lm_head.weight). node-llama-cpp is installed into
--node-dir (default ${QFMT_NODE_LLAMA_DIR:-~/.cache/qfmt/node-llama-cpp}) when missing.
Needs about 3x the model's size free in DIR. Exit status 0, 1 on a failure, 2 on a usage error.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def fail(msg):
    print("side_by_side: " + msg, file=sys.stderr)
    sys.exit(1)


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        fail("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, (p.stderr or p.stdout)[-600:]))
    return p.stdout


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def node_llama(node_dir):
    if not shutil.which("node") or not shutil.which("npm"):
        fail("node and npm are needed (node-llama-cpp 3.21.1 runs llama.cpp)")
    pkg = os.path.join(node_dir, "node_modules", "node-llama-cpp", "package.json")
    try:
        version = json.load(open(pkg)).get("version")
    except (OSError, ValueError):
        version = None
    if version != "3.21.1":
        print("installing node-llama-cpp 3.21.1 into %s" % node_dir, flush=True)
        os.makedirs(node_dir, exist_ok=True)
        if not os.path.exists(os.path.join(node_dir, "package.json")):
            run(["npm", "init", "-y"], cwd=node_dir)
        run(["npm", "i", "-E", "--no-audit", "--no-fund", "node-llama-cpp@3.21.1"], cwd=node_dir)
    shutil.copy(os.path.join(HERE, "llamacpp_speed.mjs"), node_dir)


def synthesise(bench_run, d):
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        run([bench_run, "--synthetic", d, "--keep", "--no-fixtures", "--types", "none"])
    tok = os.path.join(d, "tokenizer.json")
    if not os.path.exists(tok):
        src = os.path.join(ROOT, "tests", "data", "fixtures", "tokenizers", "llama2.tokenizer.json.zst")
        if not shutil.which("zstd"):
            fail("the zstd tool is needed to unpack %s" % src)
        run(["zstd", "-q", "-d", src, "-o", tok])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default="/tmp/qfmt-side-by-side")
    ap.add_argument("--source")
    ap.add_argument("--types", default="f16,q8_0,q4_0,q4_k_m")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--gen", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json")
    ap.add_argument("--qfmt", default=os.path.join(ROOT, "build", "release", "tools", "qfmt"))
    ap.add_argument("--bench-run", default=os.path.join(ROOT, "build", "release", "bench", "bench_run"))
    ap.add_argument("--node-dir", default=os.environ.get("QFMT_NODE_LLAMA_DIR") or
                    os.path.expanduser("~/.cache/qfmt/node-llama-cpp"))
    ap.add_argument("--convert-arg", action="append", default=[])
    a = ap.parse_args()
    try:
        threads = [int(t) for t in a.threads.split(",")]
    except ValueError:
        ap.error("--threads: a list of integers")
    if not threads or min(threads) < 1 or a.prompt < 1 or a.gen < 1 or a.repeat < 1:
        ap.error("--threads, --prompt, --gen and --repeat must be positive")
    for b in (a.qfmt, a.bench_run):
        if not os.access(b, os.X_OK):
            fail("%s not found: build the release tree first (or pass --qfmt / --bench-run)" % b)
    node_llama(a.node_dir)
    os.makedirs(a.dir, exist_ok=True)
    src = a.source
    if not src:
        synthesise(a.bench_run, a.dir)
        src = a.dir
    print("side_by_side: %s, %d online CPUs; qfmt fast path vs llama.cpp (node-llama-cpp 3.21.1); "
          "%d-token prompt, %d generated tokens, best of %d" % (cpu_name(), os.cpu_count(), a.prompt, a.gen, a.repeat))
    print("  type     threads | prompt tok/s: qfmt  llama.cpp  ratio | generation tok/s: qfmt  llama.cpp  ratio  bound  qfmt/bound")
    rows = []
    scratch = tempfile.mkdtemp(prefix="qfmt-sbs.")
    try:
        for t in a.types.split(","):
            q, g = os.path.join(a.dir, "sbs-%s.qfmt" % t), os.path.join(a.dir, "sbs-%s.gguf" % t)
            run([a.qfmt, "convert", src, "-o", q, "--type", t, "--threads", str(os.cpu_count())] + a.convert_arg)
            run([a.qfmt, "export", q, "-o", g])
            for n in threads:
                js = os.path.join(scratch, "qfmt.json")
                if os.path.exists(js):
                    os.unlink(js)
                run([a.bench_run, "--model", q, "--no-fixtures", "--paths", "fast", "--threads", str(n),
                     "--prompt", str(a.prompt), "--gen", str(a.gen), "--repeat", str(a.repeat), "--json", js])
                ours = json.loads(open(js).read().splitlines()[-1])
                ids = os.path.join(scratch, "ids.json")
                json.dump(ours["prompt_ids"], open(ids, "w"))
                theirs = json.loads(run(["node", "llamacpp_speed.mjs", g, ids, str(n), str(ours["gen_tokens"]),
                                         str(a.repeat)], cwd=a.node_dir).splitlines()[-1])
                row = {"type": t, "threads": n, "prompt_tokens": ours["prompt_tokens"], "gen_tokens": ours["gen_tokens"],
                       "qfmt_tps": ours["gen_tps"], "llamacpp_tps": theirs["gen_tps"],
                       "ratio": ours["gen_tps"] / theirs["gen_tps"], "bound_tps": ours["bound_tps"],
                       "qfmt_prompt_tps": ours["prompt_tps"], "llamacpp_prompt_tps": theirs["prompt_tps"],
                       "prompt_ratio": ours["prompt_tps"] / theirs["prompt_tps"],
                       "weight_bytes_per_token": ours["weight_bytes_per_token"],
                       "read_bytes_per_s": ours["read_bytes_per_s"], "llama_cpp": theirs["llama_cpp"],
                       "cpu": cpu_name()}
                rows.append(row)
                print("  %-8s %7d | %17.1f %10.1f %6.2f | %21.2f %10.2f %6.2f %6.1f %9.0f%%" % (
                    t, n, row["qfmt_prompt_tps"], row["llamacpp_prompt_tps"], row["prompt_ratio"], row["qfmt_tps"],
                    row["llamacpp_tps"], row["ratio"], row["bound_tps"], 100 * row["qfmt_tps"] / row["bound_tps"]),
                    flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rows:
        print("ratio = qfmt / llama.cpp (above 1: qfmt faster); bound = read bandwidth measured by bench_run just "
              "before / weight bytes read per token; llama.cpp: %s" % rows[0]["llama_cpp"])
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
