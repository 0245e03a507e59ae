#!/usr/bin/env bash
# Gate an SGLang build on a GPU runner with no real weights and no internet (issue 13).
#
#   scripts/gpu_gate.sh OUTDIR CONFIG [CONFIG ...]
#
# For each CONFIG (one parser configuration at a time: SGLang sizes its memory pools from what is free,
# so two servers cannot share one GPU), start SGLang on one of the project's tiny random-weight fixture
# checkpoints (fixtures/models/build_fixture_models.py), run the conformance suite against it as the
# variant it stands in for, write OUTDIR/report-CONFIG/{report.json,matrix.md,matrix.html}, and stop it.
# Checks that need real weights skip with "random weights"; everything else — parsers, protocol,
# validation, sampling semantics, regex-forced tool calls and <think> splitting — runs on real SGLang.
#
# CONFIG is one of: reasoning (MoE as 8B-A1B: lfm2 + qwen3), thinking (dense as 1.2B-Thinking: lfm2 +
# qwen3-thinking), instruct (dense as 1.2B-Instruct: lfm2), vl (VL as VL-1.6B: lfm2), base (dense as
# 1.2B-Base: no parsers).
#
# Environment:
#   SGLANG_START   command that starts SGLang and prints its process-group id once /health answers:
#                  "$SGLANG_START MODEL_DIR PORT LOGFILE FLAGS..." (default: .gpu/start_sglang.sh with the
#                  archive .gpu/sglang-0.5.17.tar.xz; see /work/shared/gpu/README.md for that kit)
#   MODELS         directory of the fixture checkpoints (default .gpu/models)
#   LFM_HARDWARE   the GPU (default: detected with nvidia-smi by the plugin)
#   GATE_PYTEST_ARGS  extra pytest arguments (default: -n 16 -k "not perf" --timeout 90; --timeout needs
#                  pytest-timeout, present on the lent GPU image)
#   GATE_BUDGET_S  seconds the suite may take per configuration (default 240)
set -uo pipefail
OUT=${1:?usage: gpu_gate.sh OUTDIR CONFIG...}; shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODELS=${MODELS:-$REPO/.gpu/models}
START=${SGLANG_START:-"bash $REPO/.gpu/start_sglang.sh $REPO/.gpu/sglang-0.5.17.tar.xz"}
BUDGET=${GATE_BUDGET_S:-240}
if [ -n "${GATE_PYTEST_ARGS:-}" ]; then eval "EXTRA=($GATE_PYTEST_ARGS)"; else EXTRA=(-n 16 -k "not perf" --timeout 90); fi
mkdir -p "$OUT"
PLUGIN=()
python3 -c 'import importlib.metadata as m; m.version("pytest-lfm")' 2>/dev/null || PLUGIN=(-p pytest_lfm.plugin)
# the plugin's own dependencies (pydantic, openai, jsonschema, ...) come from SGLang's environment
SITE=${SITE:-$HOME/sglang-site}
export PYTHONPATH="$REPO${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
status=0
for name in "$@"; do
  case $name in
    reasoning) model=tiny-lfm2-moe;   variant=8B-A1B;        flags="--tool-call-parser lfm2 --reasoning-parser qwen3";;
    thinking)  model=tiny-lfm2-dense; variant=1.2B-Thinking; flags="--tool-call-parser lfm2 --reasoning-parser qwen3-thinking";;
    instruct)  model=tiny-lfm2-dense; variant=1.2B-Instruct; flags="--tool-call-parser lfm2";;
    vl)        model=tiny-lfm2-vl;    variant=VL-1.6B;       flags="--tool-call-parser lfm2 --mm-attention-backend triton_attn";;
    base)      model=tiny-lfm2-dense; variant=1.2B-Base;     flags="";;
    *) echo "unknown configuration $name" >&2; status=2; continue;;
  esac
  port=$((30100 + RANDOM % 500)); t0=$(date +%s)
  # shellcheck disable=SC2086
  pgid=$($START "$MODELS/$model" "$port" "$OUT/server-$name.log" $flags | tail -1)
  echo "== $name: SGLang on $model as $variant, started in $(( $(date +%s) - t0 )) s (pgid ${pgid:-none})"
  if ! [[ "$pgid" =~ ^[0-9]+$ ]]; then tail -30 "$OUT/server-$name.log" >&2; status=1; continue; fi
  t1=$(date +%s)
  timeout "$BUDGET" python3 -m pytest "${PLUGIN[@]}" "$REPO/conformance" --rootdir="$REPO" \
    --lfm-server="$variant=http://127.0.0.1:$port" ${LFM_HARDWARE:+--lfm-hardware=$LFM_HARDWARE} \
    --lfm-timeout=60 --lfm-report="$OUT/report-$name" -p no:cacheprovider -v -rfE "${EXTRA[@]}" \
    > "$OUT/pytest-$name.txt" 2>&1
  rc=$?
  grep -E "^(FAILED|ERROR)|passed|failed" "$OUT/pytest-$name.txt" | tail -25
  echo "== $name: pytest exit $rc after $(( $(date +%s) - t1 )) s"
  [ "$rc" -eq 0 ] || status=1
  kill -- -"$pgid" 2>/dev/null; sleep 5; kill -9 -- -"$pgid" 2>/dev/null
done
exit $status
