#!/usr/bin/env bash
# Archive recipe: SGLang 0.5.17 plus every package an offline Hopper GPU host (Python 3.12, torch 2.11.0
# cu130, triton 3.6, transformers 5.17, numpy, Pillow) lacks to run `sglang.launch_server` on LFM2
# checkpoints and `python -m sglang.bench_serving --dataset-name random-ids`, installed (not as wheels)
# into one directory and packed as a single .tar.xz (about 55 MB), so one file crosses the air gap.
#
#   scripts/gpu/build_sglang_archive.sh OUT.tar.xz
#
# Needs pip that reaches a package index, a CPython 3.12 (found on PATH or pyenv, or set PY312), unzip
# and xz. The slow parts are the 383 MB sglang-kernel download and `xz -9e` (about 16 min on 2 cores).
# Unpack and start a server with scripts/gpu/start_sglang.sh.
set -euo pipefail
OUTFILE=${1:?usage: build_sglang_archive.sh OUT.tar.xz}
OUTFILE=$(realpath -m "$OUTFILE")
mkdir -p "$(dirname "$OUTFILE")"
WORK=$(mktemp -d)
# KEEP_SITE=DIR keeps a copy of the unpacked site there (to try imports before moving the archive).
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/wheels" "$WORK/site"

find_py312() {
  local cand
  for cand in "${PY312:-}" "$(command -v python3.12 || true)" "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    if [ -n "$cand" ] && [ -x "$cand" ] && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}
PY=$(find_py312) || { echo "no CPython 3.12 found: set PY312=/path/to/python3.12" >&2; exit 2; }

# Wheels for the GPU host, whatever this machine is.
TARGET=(--only-binary=:all: --python-version 3.12 --implementation cp)
for tag in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_26 manylinux_2_27 \
           manylinux_2_28 manylinux_2_31 manylinux_2_34; do
  TARGET+=(--platform "${tag}_x86_64")
done

# Exact versions, one of each, found by importing sglang.launch_server, the LFM2 model code and
# sglang.bench_serving against the GPU image. Installed with --no-deps: the image provides the rest.
SERVER_PKGS=(
  sglang==0.5.17 transformers==5.12.1 tokenizers==0.22.2 xgrammar==0.2.1 apache-tvm-ffi==0.1.11
  flashinfer-python==0.6.15.post1 openai==2.6.1 jiter==0.19.0 distro==1.9.0 sniffio==1.3.1
  pydantic==2.14.3 pydantic-core==2.50.4 annotated-types==0.8.0 typing-inspection==0.4.5
  fastapi==0.165.0 starlette==1.10.0 opentelemetry-api==1.45.2 uvicorn==0.54.0 python-multipart==0.0.34
  orjson==3.13.0 msgspec==0.22.0 pyzmq==27.3.0 setproctitle==1.3.8 pybase64==1.5.1
  partial-json-parser==0.2.1.1.post7 dill==0.4.1 ipython==9.18.1 traitlets==5.16.1
  compressed-tensors==0.20.0 gguf==0.19.0 loguru==0.7.3 jsonschema==4.26.0
  jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 soundfile==0.13.1
  cffi==2.1.1 pycparser==3.12
)
# What sglang.bench_serving imports on top of the server's packages (HTTP client, progress bar, table).
BENCH_PKGS=(
  aiohttp==3.14.5 aiohappyeyeballs==2.7.1 aiosignal==1.4.0 attrs==26.1.0 frozenlist==1.8.0
  multidict==7.2.1 propcache==0.5.4 yarl==1.25.1 idna==3.20
  requests==2.34.2 certifi==2026.10.19.post1 charset-normalizer==3.5.3 urllib3==2.8.0
  tqdm==4.70.1 tabulate==0.10.0
)
python3 -m pip download -q --no-deps "${TARGET[@]}" -d "$WORK/wheels" "${SERVER_PKGS[@]}" "${BENCH_PKGS[@]}"
"$PY" -m pip install -q --no-deps --no-index --no-compile --target "$WORK/site" "$WORK"/wheels/*.whl
rm -f "$WORK/site/xgrammar/lib/libxgrammar.a"   # static library, not loaded at run time

# sglang-kernel: only the Hopper (sm90) library and its Python files. FlashAttention-3 (1.1 GB), the
# sm100 build and optional ops are left out, so servers on this build use --attention-backend
# torch_native. The dist-info stays: SGLang checks the kernel's version at start-up.
python3 -m pip download -q --no-deps "${TARGET[@]}" -d "$WORK/kernel" sglang-kernel==0.4.5
(cd "$WORK/site" && unzip -q -o "$WORK"/kernel/sglang_kernel-0.4.5-*.whl \
   -x 'sgl_kernel/flash_ops.abi3.so' 'sgl_kernel/sm100/*' 'sgl_kernel/infllm_ops*' 'sgl_kernel/flashmla_ops.abi3.so')

# sglang.benchmark imports `datasets` at module level for datasets that download from the Hub
# (MMMU, LongBench). The synthetic `random-ids` dataset never calls it; the real package would add
# pyarrow and pandas (about 60 MB), so a stand-in that fails loudly when called is installed instead.
mkdir -p "$WORK/site/datasets"
cat > "$WORK/site/datasets/__init__.py" <<'PY'
"""Stand-in for Hugging Face `datasets` in the offline SGLang archive (no Hub access there)."""


def load_dataset(*args, **kwargs):
    raise RuntimeError(
        "this offline SGLang archive has no Hugging Face `datasets`; use a synthetic bench_serving "
        "dataset (--dataset-name random-ids) or install `datasets` next to the archive"
    )
PY

find "$WORK/site" -name __pycache__ -prune -exec rm -rf {} +
if [ -n "${KEEP_SITE:-}" ]; then rm -rf "$KEEP_SITE"; mkdir -p "$KEEP_SITE"; cp -a "$WORK/site/." "$KEEP_SITE/"; fi
tar -C "$WORK/site" -cf - . | xz -9e -T2 > "$OUTFILE.part"
mv "$OUTFILE.part" "$OUTFILE"
ls -la "$OUTFILE"
