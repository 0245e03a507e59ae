#!/usr/bin/env bash
# Engine mode on a GPU runner with no real weights and no internet (issue 14).
#
#   scripts/gpu_engine_run.sh OUTDIR
#
# Runs conformance/engine/test_engine.py through SGLang's offline sgl.Engine, in the pytest process, on the
# project's tiny random-weight fixture checkpoints (fixtures/models/build_fixture_models.py), one variant
# per pytest process (one engine at a time: SGLang sizes its memory pools from what is free, and
# Engine.shutdown() kills every child of its process). Writes, per run:
#   OUTDIR/pytest-engine-VARIANT.txt     the pytest output (-v -rA)
#   OUTDIR/report-VARIANT/               report.json, matrix.md, matrix.html
# and OUTDIR/SUMMARY.md (GPU, SGLang version, per-run exit code, time and result line), the material for a
# docs/runs/ entry. Each engine takes about 60-130 s to start on an H100 (Triton compiles on first use).
#
# Environment:
#   ENGINE_RUNS   space-separated VARIANT=CHECKPOINT pairs (default "8B-A1B=tiny-lfm2-moe"; e.g. add
#                 "VL-1.6B=tiny-lfm2-vl 1.2B-Base=tiny-lfm2-dense")
#   MODELS        directory of the fixture checkpoints (default .gpu/models)
#   ARCHIVE       SGLang 0.5.17 archive (default .gpu/sglang-0.5.17.tar.xz; scripts/gpu/build_sglang_archive.sh)
#   SITE          where the archive is unpacked once (default ~/sglang-site, as scripts/gpu/start_sglang.sh)
#   LFM_HARDWARE  the GPU (default h100)
#   ENGINE_BUDGET_S  seconds one pytest run may take (default 540); on expiry `timeout` sends SIGTERM,
#                 which the plugin turns into Ctrl-C: the engine is shut down and the report written
#   ENGINE_PYTEST_ARGS  extra pytest arguments, e.g. "--lfm-engine-arg log_level=info"
set -uo pipefail
OUT=${1:?usage: gpu_engine_run.sh OUTDIR}
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODELS=${MODELS:-$REPO/.gpu/models}
ARCHIVE=${ARCHIVE:-$REPO/.gpu/sglang-0.5.17.tar.xz}
SITE=${SITE:-$HOME/sglang-site}
HW=${LFM_HARDWARE:-h100}
BUDGET=${ENGINE_BUDGET_S:-540}
RUNS=${ENGINE_RUNS:-"8B-A1B=tiny-lfm2-moe"}
if [ -n "${ENGINE_PYTEST_ARGS:-}" ]; then eval "EXTRA=($ENGINE_PYTEST_ARGS)"; else EXTRA=(); fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)

if [ ! -f "$SITE/.done" ]; then
  t0=$(date +%s)
  mkdir -p "$SITE" && tar -C "$SITE" -xJf "$ARCHIVE" && touch "$SITE/.done" \
    || { echo "could not unpack $ARCHIVE into $SITE" >&2; exit 2; }
  echo "== unpacked SGLang into $SITE in $(( $(date +%s) - t0 )) s"
fi
# SGLang and the plugin's dependencies come from the archive; the plugin from this checkout.
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
unset LFM_ENGINE_FACTORY
PLUGIN=()
python3 -c 'import importlib.metadata as m; m.version("pytest-lfm")' 2>/dev/null || PLUGIN=(-p pytest_lfm.plugin)
VERSION=$(python3 -c 'import importlib.metadata as m; print(m.version("sglang"))' 2>&1 | tail -1)
GPU=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1)
{
  echo "# Engine mode on ${GPU:-an unknown GPU} with SGLang ${VERSION}"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); python: $(python3 -V 2>&1); hardware declared: $HW"
  echo "- checkout: $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo
} > "$OUT/SUMMARY.md"

status=0
cd "$REPO" || exit 2
for run in $RUNS; do
  variant=${run%%=*} model=${run#*=}
  t0=$(date +%s)
  echo "== $variant: sgl.Engine on $MODELS/$model (GPU memory used before: $(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1))"
  timeout --signal=TERM --kill-after=60 "$BUDGET" python3 -m pytest "${PLUGIN[@]}" conformance/engine/test_engine.py \
    --rootdir="$REPO" --lfm-engine --lfm-model-path "$variant=$MODELS/$model" --lfm-variant "$variant" \
    --lfm-hardware "$HW" --lfm-report "$OUT/report-$variant" -p no:cacheprovider -v -rA "${EXTRA[@]}" \
    > "$OUT/pytest-engine-$variant.txt" 2>&1
  rc=$?
  after=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | head -1)
  line=$(grep -E "^=+ .*(passed|failed|error|skipped).* in [0-9.]+s" "$OUT/pytest-engine-$variant.txt" | tail -1)
  grep -E "^(PASSED|FAILED|ERROR|SKIPPED)" "$OUT/pytest-engine-$variant.txt" | cut -c1-200
  echo "== $variant: pytest exit $rc after $(( $(date +%s) - t0 )) s; GPU memory used after: ${after:-?}"
  echo "- $variant on \`$model\`: exit $rc in $(( $(date +%s) - t0 )) s; ${line:-no result line}; GPU memory used after: ${after:-?}" >> "$OUT/SUMMARY.md"
  [ "$rc" -eq 0 ] || status=1
done
echo
cat "$OUT/SUMMARY.md"
exit $status
