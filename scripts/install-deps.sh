#!/usr/bin/env bash
# Installs, with apt-get, the Debian packages qfmt needs to build and test, and only those
# that are missing. Runs apt-get update only when something must be installed.
# Set QFMT_SKIP_DEPS=1 to skip this step (e.g. on a machine you manage yourself).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${QFMT_SKIP_DEPS:-0}" == 1 ]]; then
    echo "install-deps: QFMT_SKIP_DEPS=1, skipping"
    exit 0
fi

packages=(
    gcc make cmake pkg-config             # toolchain
    libzstd-dev libxxhash-dev             # library
    zstd                                  # tests unpack compressed fixtures
    libcjson-dev libpcre2-dev             # safetensors headers; tokenizer regex (run, eval)
    libutf8proc-dev                       # tokenizer normalizers, Unicode classes
    libcriterion-dev python3              # tests (CLI tests parse outputs with python3's stdlib)
    clang libclang-rt-dev                 # libFuzzer and clang's sanitizer runtimes
)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "install-deps: dpkg-query not found; this script supports Debian/Ubuntu only." >&2
    echo "install-deps: install by hand: ${packages[*]}" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    [[ "$status" == installed ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi

sudo=()
if [[ "$(id -u)" != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-deps: missing ${missing[*]}, and not root and no sudo: install them as root" >&2
        exit 1
    fi
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
