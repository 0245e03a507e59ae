#!/usr/bin/env bash
# One SGLang server on the dense fixture checkpoint (as 1.2B-Instruct), then scripts/gpu/side_by_side.py
# (pytest_lfm bench and sglang.bench_serving interleaved at concurrency 1, 16 and 64), then stop it.
#
#   scripts/gpu/bench_side_by_side.sh OUTDIR [side_by_side.py options...]
#
# Environment: ARCHIVE (default .gpu/sglang-0.5.17.tar.xz), MODELS (default .gpu/models), SITE (default
# ~/sglang-site), PORT (default 30000), MODEL (default tiny-lfm2-dense).
set -uo pipefail
OUT=${1:?usage: bench_side_by_side.sh OUTDIR [options...]}; shift
REPO=$(cd "$(dirname "$0")/../.." && pwd)
ARCHIVE=${ARCHIVE:-$REPO/.gpu/sglang-0.5.17.tar.xz}
MODELS=${MODELS:-$REPO/.gpu/models}
PORT=${PORT:-30000}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
export SITE=${SITE:-$HOME/sglang-site}
t0=$(date +%s)
pgid=$(bash "$REPO/scripts/gpu/start_sglang.sh" "$ARCHIVE" "$MODELS/${MODEL:-tiny-lfm2-dense}" "$PORT" \
       "$OUT/server.log" --tool-call-parser lfm2 | tail -1)
[[ "$pgid" =~ ^[0-9]+$ ]] || { echo "SGLang did not start" >&2; exit 1; }
echo "== SGLang healthy after $(( $(date +%s) - t0 )) s"
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python3 -c "import sglang.bench_serving, pytest_lfm.bench" || { echo "imports failed" >&2; kill -- -"$pgid"; exit 1; }
python3 "$REPO/scripts/gpu/side_by_side.py" --server "http://127.0.0.1:$PORT" --out "$OUT" "$@"
rc=$?
kill -- -"$pgid" 2>/dev/null; sleep 3; kill -9 -- -"$pgid" 2>/dev/null
echo "== side by side done after $(( $(date +%s) - t0 )) s (exit $rc)"
exit $rc
