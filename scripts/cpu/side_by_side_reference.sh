#!/usr/bin/env bash
# pytest_lfm bench (A) against SGLang's own bench_serving (B) on the CPU, both against one reference server
# whose stream timing is injected (--ttft-delay-ms, --tpot-delay-ms): the two instruments measure one known
# server, so a difference between them is a difference of definitions or client overhead, not of GPU noise.
#
#   scripts/cpu/side_by_side_reference.sh OUTDIR [side_by_side.py options...]
#
# Needs: a python with pytest_lfm, transformers, aiohttp, orjson, requests, tqdm, pybase64, psutil, pyzmq
# (PYTHON, default python3), an SGLang release tree for bench_serving (SGLANG_TREE, default
# .sglang-parsers/0.5.17, from scripts/install_sglang_parsers.sh), a tokenizer for random-ids (TOKENIZER,
# default .gpu/models/tiny-lfm2-dense, from fixtures/models/build_fixture_models.py). Environment: PORT
# (default 30555), TTFT_MS (default 40), TPOT_MS (default 8).
set -uo pipefail
OUT=${1:?usage: side_by_side_reference.sh OUTDIR [options...]}; shift
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PYTHON=${PYTHON:-python3}
PORT=${PORT:-30555}
mkdir -p "$OUT"
"$PYTHON" -m pytest_lfm.reference --variant 1.2B-Instruct --port "$PORT" --ttft-delay-ms "${TTFT_MS:-40}" \
  --tpot-delay-ms "${TPOT_MS:-8}" --watch-parent > "$OUT/reference.log" 2>&1 &
ref=$!
trap 'kill $ref 2>/dev/null' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.5; done
export PYTHONPATH="${SGLANG_TREE:-$REPO/.sglang-parsers/0.5.17}${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1
"$PYTHON" "$REPO/scripts/gpu/side_by_side.py" --server "http://127.0.0.1:$PORT" --out "$OUT" \
  --tokenizer "${TOKENIZER:-$REPO/.gpu/models/tiny-lfm2-dense}" --bench-serving "$REPO/scripts/cpu/bench_serving_lite.py" "$@"
