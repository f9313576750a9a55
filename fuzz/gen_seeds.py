#!/usr/bin/env python3
"""Writes the hand-made seeds of fuzz_safetensors, fuzz_tokenizer, fuzz_config and fuzz_quant
into fuzz/corpus/<name>/ (deterministic; standard library only), and those of fuzz_st_writer and
fuzz_hf_checkpoint. The fuzz_reader seeds come from examples/gen_fuzz_seeds.c instead, the
fuzz_model ones from fuzz/gen_model_seeds.c. Seeds a campaign found are kept next to these (their
names are SHA-1s); this script only (re)writes the files whose names it chooses.

    python3 fuzz/gen_seeds.py            # from the repository root
"""
import json
import os
import random
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "data", "fixtures")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    assert len(data) <= 16384, (target, name, len(data))
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- safetensors -------------------------------------------------------------------------

ST_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
            "I8": 1, "U8": 1, "BOOL": 1}


def safetensors(tensors, metadata=None, pad=0, raw_header=None):
    """tensors: list of (name, dtype, shape, data bytes or None for generated)."""
    header, blobs, at = {}, [], 0
    rnd = random.Random(len(tensors))
    for name, dtype, shape, data in tensors:
        n = 1
        for d in shape:
            n *= d
        size = n * ST_SIZES[dtype]
        if data is None:
            if dtype == "F32":
                data = struct.pack("<%df" % n, *[rnd.gauss(0, 1) for _ in range(n)])
            elif dtype == "BOOL":
                data = bytes(rnd.randrange(2) for _ in range(size))
            else:
                data = bytes(rnd.randrange(256) for _ in range(size))
        assert len(data) == size, name
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [at, at + size]}
        blobs.append(data)
        at += size
    if metadata is not None:
        header["__metadata__"] = metadata
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    h = h.encode("utf-8") + b" " * pad
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def gen_safetensors():
    put("safetensors", "tiny_f32.st", safetensors([("w", "F32", [2, 3], None)]))
    put("safetensors", "all_dtypes.st", safetensors(
        [(d.lower(), d, [2, 3], None) for d in ST_SIZES], metadata={"format": "pt"}))
    put("safetensors", "scalar_empty.st", safetensors(
        [("scalar", "F32", [], None), ("empty", "F16", [0, 4], b""), ("one", "I8", [1], None)]))
    put("safetensors", "padded_header.st", safetensors([("x", "BF16", [4], None)], pad=7))
    put("safetensors", "rows_of_blocks.st", safetensors(
        [("layer.weight", "F32", [2, 64], None), ("layer.bias", "F32", [2], None),
         ("h.weight", "F16", [1, 32], None), ("b.weight", "BF16", [3, 32], None)]))
    f = struct.pack("<32f", *([float("nan"), float("inf"), -float("inf"), 1e38, -0.0, 1e-45] +
                              [0.5] * 26))
    put("safetensors", "nonfinite.st", safetensors([("bad.weight", "F32", [1, 32], f)]))
    big = struct.pack("<32e", *([65504.0, -65504.0, 6e-8, -6e-8] + [1.0] * 28))
    put("safetensors", "f16_extremes.st", safetensors([("e.weight", "F16", [1, 32], big)]))
    put("safetensors", "metadata_only.st", safetensors(
        [], metadata={"format": "pt", "note": "caf\u00e9", "": "empty key"}))
    put("safetensors", "unicode_names.st", safetensors(
        [("\u00e9t\u00e9.w", "U8", [3], None), ("a/b.c[0]", "I16", [1, 1, 1, 1, 1, 1, 1, 1], None)]))
    # Hugging Face layouts from the fixtures, shrunk: the real names and dtypes, tiny shapes.
    for model in ("gpt2-kjv", "llama-kjv", "bert-kjv"):
        with open(os.path.join(FIX, model, "model.safetensors"), "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            hdr = json.loads(fh.read(n))
        meta = hdr.pop("__metadata__", None)
        items = sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][0])[:12]
        ts = []
        for name, e in items:
            shape = [min(d, 2) for d in e["shape"]]
            ts.append((name, e["dtype"], shape, None))
        put("safetensors", model + "_shrunk.st", safetensors(ts, metadata=meta))
    with open(os.path.join(FIX, "bert-kjv", "mlm_mask.safetensors"), "rb") as fh:
        put("safetensors", "mlm_mask.st", fh.read())
    # refused at open, each for one reason
    put("safetensors", "overlap.st", safetensors([], raw_header=json.dumps(
        {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
         "b": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]}})) + b"abc")
    put("safetensors", "bad_dtype.st", safetensors([], raw_header=json.dumps(
        {"a": {"dtype": "F8_E4M3", "shape": [2], "data_offsets": [0, 2]}})) + b"ab")
    put("safetensors", "nul_escape.st", safetensors([], raw_header=
        '{"a\\u0000b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}') + b"x")


# ---- tokenizer.json ------------------------------------------------------------------------

def byte_chars():
    bs = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = {}, 0
    for b in range(256):
        if b in bs:
            cs[b] = chr(b)
        else:
            cs[b] = chr(256 + n)
            n += 1
    return cs


def tokenizer(vocab_extra, merges, added, pre=None, model_opts=None, bytes_only=None):
    bc = byte_chars()
    vocab = {}
    for a in added:
        if a.get("in_vocab"):
            vocab[a["content"]] = len(vocab)
    for b in range(256):
        if bytes_only is None or b in bytes_only:
            vocab[bc[b]] = len(vocab)
    for t in vocab_extra:
        vocab.setdefault(t, len(vocab))
    nv = len(vocab)
    added_tokens = []
    for a in added:
        e = {"id": vocab[a["content"]] if a["content"] in vocab else nv, "content": a["content"],
             "single_word": a.get("single_word", False), "lstrip": a.get("lstrip", False),
             "rstrip": a.get("rstrip", False), "normalized": a.get("normalized", False),
             "special": a.get("special", True)}
        if a["content"] not in vocab:
            nv += 1
        added_tokens.append(e)
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
             "ignore_merges": False, "vocab": vocab, "merges": merges}
    if model_opts:
        model.update(model_opts)
    return json.dumps({
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
        "normalizer": None,
        "pre_tokenizer": pre or {"type": "ByteLevel", "add_prefix_space": False,
                                 "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": model}, ensure_ascii=False, separators=(",", ":"))


GPT2_RE = ("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+")


def gen_tokenizer():
    merges = [["t", "h"], ["\u0120", "th"], ["\u0120th", "e"], ["a", "n"], ["an", "d"],
              ["\u0120", "and"], ["l", "i"], ["li", "g"], ["lig", "h"], ["ligh", "t"],
              ["\u0120", "light"], ["e", "r"], ["\u0120th", "er"]]
    extra = ["th", "\u0120th", "\u0120the", "an", "and", "\u0120and", "li", "lig", "ligh",
             "light", "\u0120light", "er", "\u0120ther"]
    added = [{"content": "<|endoftext|>", "in_vocab": True},
             {"content": "[MASK]", "lstrip": True},
             {"content": "[CLS]", "single_word": True, "special": False},
             {"content": "<s>", "normalized": True, "rstrip": True, "special": False}]
    text = "\0And God said, Let there be light: and there was light. [MASK] <|endoftext|><s>  x"
    put("tokenizer", "small.json", tokenizer(extra, merges, added) + text)
    put("tokenizer", "small_string_merges.json", tokenizer(
        extra, [" ".join(m) for m in merges], added[:1],
        pre={"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": GPT2_RE}, "behavior": "Isolated",
             "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
             "use_regex": False}]}) + "\0the light\n\n\t caf\u00e9 123")
    put("tokenizer", "prefix_space_no_regex.json", tokenizer(
        extra, merges, [], pre={"type": "Sequence", "pretokenizers": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
             "use_regex": False}]}) + "\0and the light")
    put("tokenizer", "unk_fuse_ignore_merges.json", tokenizer(
        ["<unk>", "th", "the"], [["t", "h"], ["th", "e"]], [],
        model_opts={"unk_token": "<unk>", "fuse_unk": True, "ignore_merges": True},
        bytes_only=set(range(0x61, 0x7B))) + "\0the \xff\xfe unknown THE")
    put("tokenizer", "minimal.json", json.dumps({
        "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
        "decoder": {"type": "ByteLevel"}}) + "\0abab ba")
    put("tokenizer", "unsupported_unigram.json",
        '{"model":{"type":"Unigram","vocab":[["a",0.0]]},"decoder":{"type":"ByteLevel"}}')
    # the fixture, cut to its first ids (still a valid tokenizer), and a raw prefix of it
    with open(os.path.join(FIX, "tokenizer.json"), encoding="utf-8") as fh:
        real_text = fh.read()
    real = json.loads(real_text)
    keep = {t: i for t, i in real["model"]["vocab"].items() if i < 300}
    real["model"]["vocab"] = keep
    real["model"]["merges"] = [m for m in real["model"]["merges"]
                               if m[0] in keep and m[1] in keep and m[0] + m[1] in keep]
    put("tokenizer", "fixture_first_300_ids.json",
        json.dumps(real, ensure_ascii=False, separators=(",", ":")) +
        "\0In the beginning God created the heaven and the earth.")
    put("tokenizer", "fixture_prefix.json", real_text[:3000])


# the real tokenizers (tests/data/fixtures/tokenizers), shrunk to their first ids with every
# component kept: the normalizers, pre-tokenizers, models, post-processors and decoders that
# real models ship, as mutation starting points
def shrink_real(name, keep_ids, text):
    import subprocess
    raw = subprocess.run(["zstd", "-dc", os.path.join(FIX, "tokenizers", name)], check=True,
                         capture_output=True).stdout
    real = json.loads(raw)
    model = real["model"]
    if model["type"] == "Unigram":
        model["vocab"] = model["vocab"][:keep_ids]
    else:
        keep = {t: i for t, i in model["vocab"].items() if i < keep_ids}
        for t, i in model["vocab"].items():  # byte tokens (byte_fallback) kept
            if t.startswith("<0x") and len(t) == 6:
                keep[t] = i
        ids = sorted(keep.values())
        renum = {i: k for k, i in enumerate(ids)}
        model["vocab"] = {t: renum[i] for t, i in keep.items()}
        if "merges" in model:
            def parts(m):
                return m.split(" ", 1) if isinstance(m, str) else m
            prefix = model.get("continuing_subword_prefix") or ""
            model["merges"] = [m for m in model["merges"]
                               if all(p in keep for p in parts(m)) and
                               parts(m)[0] + parts(m)[1][len(prefix):] in keep][:300]
    nv = len(model["vocab"])
    added = []
    for a in real.get("added_tokens", []):
        if a["content"] in model.get("vocab", {}) if isinstance(model["vocab"], dict) else False:
            a["id"] = model["vocab"][a["content"]]
            added.append(a)
        elif len(added) < 4:
            a["id"] = nv
            nv += 1
            added.append(a)
    real["added_tokens"] = added
    pp = real.get("post_processor")
    if pp and pp.get("type") == "TemplateProcessing":
        for k, v in pp.get("special_tokens", {}).items():
            v["ids"] = [min(i, nv - 1) for i in v["ids"]]
    return json.dumps(real, ensure_ascii=False, separators=(",", ":")) + "\0" + text


def gen_real_tokenizers():
    text = ("In the beginning God created the heaven and the earth. naïve café 東京 "
            "Numbers 12345 3.14 \t\n  <s> [UNK] DON'T 😀 \u00a0x\u200b")
    for name, n in [("llama3.tokenizer.json.zst", 300), ("qwen3.tokenizer.json.zst", 300),
                    ("llama2.tokenizer.json.zst", 200), ("wordpiece-kjv.tokenizer.json.zst", 300)]:
        put("tokenizer", "real_" + name.split(".")[0] + ".json", shrink_real(name, n, text))
    # one of each component the real ones do not use
    base = {"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                      "max_input_chars_per_word": 5,
                      "vocab": {"[UNK]": 0, "a": 1, "##b": 2, "b": 3, "ab": 4, "▁": 5, "c": 6}}}
    parts = {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKD"}, {"type": "StripAccents"}, {"type": "Lowercase"},
            {"type": "Strip", "strip_left": True, "strip_right": True},
            {"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": " "},
            {"type": "NFD"}, {"type": "NFKC"}, {"type": "NFC"},
            {"type": "Prepend", "prepend": "▁"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Whitespace"}, {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
            {"type": "Digits", "individual_digits": True},
            {"type": "Split", "pattern": {"String": "a"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "b+"}, "behavior": "Contiguous", "invert": True},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
            {"type": "CharDelimiterSplit", "delimiter": "c"}, {"type": "BertPreTokenizer"}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "trim_offsets": False},
            {"type": "BertProcessing", "sep": ["c", 6], "cls": ["a", 1]},
            {"type": "RobertaProcessing", "sep": ["c", 6], "cls": ["a", 1], "trim_offsets": True,
             "add_prefix_space": False}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "WordPiece", "prefix": "##", "cleanup": True},
            {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True},
            {"type": "BPEDecoder", "suffix": "</w>"}, {"type": "Strip", "content": " ", "start": 1, "stop": 1},
            {"type": "Replace", "pattern": {"String": "a"}, "content": "A"}, {"type": "Fuse"},
            {"type": "ByteFallback"}]},
    }
    base.update(parts)
    put("tokenizer", "components_wordpiece.json",
        json.dumps(base, ensure_ascii=False) + "\0ÀB  abab a1b2c ab! cab ababab")
    uni = {"model": {"type": "Unigram", "unk_id": 0, "byte_fallback": True,
                     "vocab": [["<unk>", 0.0], ["▁a", -1.5], ["b", -2.0], ["ab", -2.5], ["▁", -3.0],
                               ["a", -3.5], ["<0xC3>", -9.0], ["<0xA9>", -9.0]]},
           "normalizer": {"type": "Sequence", "normalizers": [
               {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}, {"type": "Prepend", "prepend": "▁"}]},
           "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": False},
           "post_processor": {"type": "TemplateProcessing",
                              "single": [{"SpecialToken": {"id": "<unk>", "type_id": 0}},
                                         {"Sequence": {"id": "A", "type_id": 0}}],
                              "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                              "special_tokens": {"<unk>": {"id": "<unk>", "ids": [0], "tokens": ["<unk>"]}}},
           "decoder": {"type": "Sequence", "decoders": [
               {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
               {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}}
    put("tokenizer", "components_unigram.json", json.dumps(uni, ensure_ascii=False) + "\0ab abab é zz")
    put("tokenizer", "bytelevel_normalizer_wordlevel.json", json.dumps({
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                       "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "UnicodeScripts"},
        "model": {"type": "WordLevel", "unk_token": "?", "vocab": {"?": 0, "ab": 1, "東": 2}},
        "decoder": {"type": "CTC", "pad_token": "?", "word_delimiter_token": "|", "cleanup": True}},
        ensure_ascii=False) + "\0AB 東京 ab\u0007")


# ---- config.json ---------------------------------------------------------------------------

def gen_config():
    for model in ("gpt2-kjv", "llama-kjv", "bert-kjv"):
        with open(os.path.join(FIX, model, "config.json"), encoding="utf-8") as fh:
            put("config", model + ".json", fh.read())
    # small enough for fuzz_config to add the weights and run the model
    tiny_llama = {
        "model_type": "llama", "vocab_size": 16, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16,
        "max_position_embeddings": 8, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
        "torch_dtype": "float16"}
    put("config", "tiny_llama.json", json.dumps(tiny_llama))
    put("config", "tiny_llama_linear_rope.json", json.dumps(dict(
        tiny_llama, rope_scaling={"type": "linear", "factor": 2.0})))
    put("config", "tiny_llama_gqa_head_dim.json", json.dumps(dict(
        tiny_llama, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        head_dim=6, rope_parameters={"rope_theta": 10000.0, "rope_type": "default"},
        dtype="bfloat16")))
    put("config", "tiny_gpt2.json", json.dumps({
        "model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_layer": 2, "n_head": 2,
        "n_inner": None, "n_positions": 4, "layer_norm_epsilon": 1e-5}))
    put("config", "tiny_bert.json", json.dumps({
        "model_type": "bert", "vocab_size": 12, "hidden_size": 6, "num_hidden_layers": 1,
        "num_attention_heads": 3, "intermediate_size": 10, "max_position_embeddings": 5,
        "type_vocab_size": 2, "layer_norm_eps": 1e-12}))
    put("config", "limits.json", json.dumps({
        "model_type": "gpt2", "vocab_size": 16777216, "n_embd": 16777216, "n_layer": 4096,
        "n_head": 4096, "n_positions": 16777217, "layer_norm_epsilon": 1e300}))
    put("config", "raw_keys.json", json.dumps({
        "model.vocab_size": 3.5, "model.hidden_size": -4, "model.num_layers": "2",
        "model.num_heads": True, "model.ffn_size": 18446744073709551615,
        "model.context_length": 4, "model.norm_eps": 1e-5, "general.architecture": "bert",
        "model.type_vocab_size": 0, "model.head_dim": 0, "general.architectures": ["x", "y"]}))
    put("config", "not_an_object.json", "[1, 2, 3]")


# ---- quant ----------------------------------------------------------------------------------

QTYPES = ["q8_0", "q4_0", "q4_1", "q8_z", "q4_z"]
QBYTES = [34, 18, 20, 35, 19]


def gen_quant():
    rnd = random.Random(1)
    for t, name in enumerate(QTYPES):
        # mode 0: two rows of blocks (random bytes, and blocks with special fp16 scales)
        blocks = bytes(rnd.randrange(256) for _ in range(QBYTES[t] * 4))
        put("quant", "dequant_%s_random" % name, bytes([t, 1]) + blocks)
        special = b""
        for scale in (0x7C00, 0xFC00, 0x7E00, 0x0001, 0x8000, 0x7BFF):
            special += struct.pack("<H", scale) + bytes(rnd.randrange(256)
                                                        for _ in range(QBYTES[t] - 2))
        put("quant", "dequant_%s_special_scales" % name, bytes([t, 0]) + special)
        # modes 1-3: f32, f16, bf16 values
        vals = [rnd.gauss(0, 1) for _ in range(64)]
        put("quant", "quant_%s_f32" % name, bytes([t | 8, 1]) + struct.pack("<64f", *vals))
        put("quant", "quant_%s_f16" % name, bytes([t | 16, 0]) + struct.pack("<64e", *vals))
        bf = b"".join(struct.pack("<f", v)[2:] for v in vals)
        put("quant", "quant_%s_bf16" % name, bytes([t | 24, 4 | 8]) + bf)
    edge = ([0.0] * 32 + [1e-40, -1e-40] * 16 + [65504.0, -65504.0] * 16 +
            [1.0] * 31 + [-2.0] + [7.0] * 32 + [1e5] + [0.0] * 31)
    put("quant", "quant_q4_1_edges", bytes([2 | 8, 0]) + struct.pack("<%df" % len(edge), *edge))
    put("quant", "quant_q8_z_edges", bytes([3 | 8, 0]) + struct.pack("<%df" % len(edge), *edge))
    nan = [float("nan")] + [1.0] * 31 + [float("inf")] + [0.0] * 31
    put("quant", "quant_q8_0_nonfinite", bytes([0 | 8, 8]) + struct.pack("<64f", *nan))


# ---- st_writer (fuzz_st_writer.c decodes: mode, count, per tensor: name length, name, type,
# ndim, dims, reserved flag; then the data) ------------------------------------------------

STW_TYPE = {"F32": 0, "F16": 1, "Q8_0": 8, "I8": 24, "I16": 25, "I32": 26, "I64": 27,
            "F64": 28, "BF16": 30, "U8": 32, "BOOL": 33}


def stw(mode, tensors, data=b""):
    """tensors: (name bytes or an int 0x80 | k for a duplicate of k, dtype, dims, reserved)."""
    out = bytes([mode, len(tensors)])
    for name, dtype, dims, *rest in tensors:
        if isinstance(name, int):
            out += bytes([name])
        else:
            out += bytes([len(name)]) + name
        out += bytes([STW_TYPE[dtype], len(dims)]) + bytes(dims)
        out += bytes([0xA5 if rest and rest[0] else 0])
    return out + data


def gen_st_writer():
    data = bytes(range(256)) * 2
    put("st_writer", "commit_three", stw(0, [(b"a", "F32", [2, 3]), (b"layer.0.weight", "BF16", [4]),
                                             ("\u00e9\u540d".encode(), "I64", [])], data))
    put("st_writer", "every_dtype", stw(1 | (2 << 3), [(b"f32", "F32", [2]), (b"f16", "F16", [3]),
                                                       (b"bf16", "BF16", [1, 2]), (b"f64", "F64", [1]),
                                                       (b"i8", "I8", [5]), (b"i16", "I16", [2]),
                                                       (b"i32", "I32", [1, 1, 2])], data))
    put("st_writer", "u8_bool_4d", stw(0 | (5 << 3), [(b"u8", "U8", [2, 2, 2, 2]),
                                                      (b"mask", "BOOL", [3])], data))
    put("st_writer", "abandon", stw(2, [(b"x", "F32", [4, 4])], data))
    put("st_writer", "commit_short", stw(3, [(b"x", "F16", [3])], data))
    put("st_writer", "write_past_end", stw(4 | (1 << 3), [(b"x", "I32", [2]), (b"y", "U8", [1])], data))
    put("st_writer", "zero_sized", stw(0, [(b"e0", "F32", [0]), (b"e1", "F32", [3, 0]),
                                           (b"s", "F32", []), (b"e2", "I8", [0, 6])], data))
    put("st_writer", "no_tensors", bytes([0, 0]))
    put("st_writer", "escapes_in_name", stw(0, [(b"a\"b\\c\n\t\x01\x1f\x7f", "F32", [1])], data))
    put("st_writer", "bad_duplicate", stw(0, [(b"w", "F32", [1]), (0x80, "F16", [1])], data))
    put("st_writer", "bad_utf8", stw(0, [(b"ok", "F32", [1]), (b"\xc0\x80", "F32", [1])], data))
    put("st_writer", "bad_surrogate", stw(0, [(b"\xed\xa0\x80", "F32", [1])], data))
    put("st_writer", "bad_nul_first", stw(0, [(b"\x00abc", "F32", [1])], data))
    put("st_writer", "nul_inside", stw(0, [(b"ab\x00cd", "F32", [1])], data))
    put("st_writer", "bad_metadata_name", stw(0, [(b"__metadata__", "F32", [1])], data))
    put("st_writer", "bad_block_type", stw(0, [(b"q", "Q8_0", [32])], data))
    put("st_writer", "bad_ndim", stw(0, [(b"n", "F32", [1] * 9)], data))
    put("st_writer", "eight_dims", stw(0, [(b"n", "F32", [1, 2, 1, 2, 1, 1, 1, 1])], data))
    put("st_writer", "bad_overflow", stw(0, [(b"big", "F64", [255, 255, 255])], data))
    put("st_writer", "bad_dim_2p53", stw(0, [(b"big", "U8", [254])], data))
    put("st_writer", "overflow_then_zero", stw(0, [(b"z", "F32", [255, 255, 0])], data))
    put("st_writer", "too_big_to_write", stw(0, [(b"h", "F32", [253])], data))
    put("st_writer", "huge_accepted_abandoned", stw(0, [(b"h", "U8", [255, 6, 6, 6, 6, 6])], data))
    put("st_writer", "bad_elements_2p56_zero_dim", stw(0, [(b"z", "U8", [0, 255, 255])], data))
    put("st_writer", "bad_reserved", stw(0, [(b"r", "F32", [1], True)], data))
    put("st_writer", "name_1024", stw(0, [(b"x" * 7, "F32", [1])], data).replace(b"\x07x", b"\x7fx", 1))
    put("st_writer", "bad_name_1025", stw(0, [(b"x" * 7, "F32", [1])], data).replace(b"\x07x", b"\xffx", 1))


# ---- hf_checkpoint (fuzz_hf_checkpoint.c: an index text, then optionally NUL + config.json;
# convert runs when the index length is a multiple of 8, quantizing every tensor when byte 0
# is odd) --------------------------------------------------------------------------------------

S1 = "model-00001-of-00002.safetensors"
S2 = "model-00002-of-00002.safetensors"


def hf_index(weight_map, extra=None, convert=False, lead=""):
    obj = {"metadata": {"total_size": 392}}
    if extra:
        obj.update(extra)
    if weight_map is not None:
        obj["weight_map"] = weight_map
    text = lead + json.dumps(obj, indent=2)
    if convert:
        while len(text.encode()) % 8:
            text += "\n"
    elif len(text.encode()) % 8 == 0:
        text += "\n"
    return text


def gen_hf_checkpoint():
    full = {"a": S1, "b": S1, "c": S2}
    put("hf_checkpoint", "index_full", hf_index(full))
    put("hf_checkpoint", "index_full_convert", hf_index(full, convert=True, lead=" "))
    put("hf_checkpoint", "index_full_convert_all", hf_index(full, convert=True))
    put("hf_checkpoint", "index_one_shard", hf_index({"a": S1}))
    put("hf_checkpoint", "index_one_shard_convert", hf_index({"c": S2}, convert=True, lead=" "))
    put("hf_checkpoint", "index_missing_tensor", hf_index({"a": S1, "d": S1}))
    put("hf_checkpoint", "index_wrong_shard", hf_index({"a": S1, "c": S1}, convert=True))
    put("hf_checkpoint", "index_no_such_file", hf_index({"a": "model-00003-of-00003.safetensors"}))
    put("hf_checkpoint", "index_dotdot", hf_index({"a": "../" + S1}))
    put("hf_checkpoint", "index_dot", hf_index({"a": "."}))
    put("hf_checkpoint", "index_empty_file_name", hf_index({"a": ""}))
    put("hf_checkpoint", "index_names_config", hf_index({"a": "config.json"}))
    put("hf_checkpoint", "index_names_itself", hf_index({"a": "model.safetensors.index.json"}))
    put("hf_checkpoint", "index_not_string", hf_index({"a": 1, "b": None}))
    put("hf_checkpoint", "index_empty_map", hf_index({}))
    put("hf_checkpoint", "index_no_map", hf_index(None))
    put("hf_checkpoint", "index_map_array", hf_index(None, {"weight_map": [S1]}))
    put("hf_checkpoint", "index_not_object", "[1, 2]\n")
    put("hf_checkpoint", "index_empty", "")
    put("hf_checkpoint", "index_duplicate_key",
        '{"weight_map": {"a": "%s", "\\u0061": "%s"}}' % (S1, S2))
    put("hf_checkpoint", "index_control_chars",
        hf_index({"\u001b[31mred\u0007": S1, "a": S1}))
    put("hf_checkpoint", "index_escape_in_file",
        hf_index({"a": "model\u001b-00001.safetensors"}))
    put("hf_checkpoint", "index_invalid_utf8", b'{"weight_map": {"\xff": "' + S1.encode() + b'"}}')
    put("hf_checkpoint", "index_trailing_comma", '{"weight_map": {"a": "%s",}}' % S1)
    gpt2 = json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 8,
                       "n_head": 2, "n_layer": 1, "vocab_size": 8, "n_positions": 4})
    put("hf_checkpoint", "with_config_gpt2", hf_index(full, convert=True, lead=" ") + "\0" + gpt2)
    put("hf_checkpoint", "with_config_bad", hf_index(full) + "\0" + '{"model_type": "llama",}')
    put("hf_checkpoint", "with_config_not_object", hf_index(full, convert=True) + "\0" + "[]")
    put("hf_checkpoint", "with_config_empty", hf_index(full) + "\0")


if __name__ == "__main__":
    gen_safetensors()
    gen_tokenizer()
    gen_real_tokenizers()
    gen_config()
    gen_quant()
    gen_st_writer()
    gen_hf_checkpoint()
