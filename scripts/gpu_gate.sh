#!/usr/bin/env bash
# Gate an SGLang build on a GPU runner with no real weights and no internet (issues 13 and 21).
#
#   scripts/gpu_gate.sh OUTDIR CONFIG [CONFIG ...]
#
# For each CONFIG, start SGLang on one of the project's tiny random-weight fixture checkpoints
# (fixtures/models/build_fixture_models.py), run the conformance suite against it as the variant it stands
# in for, then its performance checks, and stop it. Writes per CONFIG:
#   OUTDIR/server-CONFIG.log, OUTDIR/pytest-CONFIG.txt, OUTDIR/report-CONFIG/       functional suite
#   OUTDIR/pytest-CONFIG-perf.txt, OUTDIR/report-CONFIG-perf/ (with performance/*.json, *.png)
# and OUTDIR/timing.txt (when each phase of each configuration started and ended, in seconds from the start).
# Checks that need real weights skip with "random weights"; everything else — parsers, protocol,
# validation, sampling semantics, regex-forced tool calls and <think> splitting — runs on real SGLang.
#
# Performance checks (conformance/test_performance.py) run alone against their server, after its functional
# suite, at LFM_PERF_SCALE=$GATE_PERF_SCALE. On these random-weight checkpoints the published per-GPU budgets
# do not apply: the budget checks calibrate a budget on the run itself and check the instrument and the gate
# machinery against it (their report line says "SELF-CALIBRATED"); with real weights the published budgets
# apply. The sweep and image checks measure and record figures.
#
# CONFIG is one of: reasoning (MoE as 8B-A1B: lfm2 + qwen3), thinking (dense as 1.2B-Thinking: lfm2 +
# qwen3-thinking), instruct (dense as 1.2B-Instruct: lfm2), vl (VL as VL-1.6B: lfm2), base (dense as
# 1.2B-Base: no parsers).
#
# Several configurations share one GPU (GATE_PARALLEL=1, the default): their servers start one after another,
# each returning as soon as its KV-cache pool is allocated (SGLang 0.5.17 sizes the pool from the memory free
# when the process started: pool = free now - free at start x (1 - mem fraction)), each with
# --mem-fraction-static $GATE_MEM_FRACTION; the slow part of a start (CUDA and Triton warm-up) and the suites
# then overlap. GATE_PARALLEL=0 runs one configuration at a time.
#
# Environment:
#   ARCHIVE        SGLang archive (default .gpu/sglang-0.5.17.tar.xz, built by scripts/gpu/build_sglang_archive.sh)
#   SGLANG_START   command that starts SGLang and prints its process-group id:
#                  "$SGLANG_START MODEL_DIR PORT LOGFILE FLAGS..." (default scripts/gpu/start_sglang.sh $ARCHIVE)
#   MODELS         directory of the fixture checkpoints (default .gpu/models)
#   SITE           where the archive is unpacked (default ~/sglang-site)
#   LFM_HARDWARE   the GPU (default: detected with nvidia-smi by the plugin)
#   GATE_PARALLEL  1 (default) or 0, see above
#   GATE_MEM_FRACTION  --mem-fraction-static per server when parallel (default 0.1)
#   GATE_WORKERS   xdist workers per functional suite (default 16, or 6 when parallel)
#   GATE_PYTEST_ARGS  extra pytest arguments for the functional suite (default: --timeout 90; needs
#                  pytest-timeout, present on the lent GPU image)
#   GATE_PERF      1 (default) runs the performance checks, 0 leaves them out
#   GATE_PERF_SCALE  LFM_PERF_SCALE for them (default 0.05: a few requests per workload)
#   GATE_BUDGET_S  seconds each pytest run may take (default 300)
set -uo pipefail
OUT=${1:?usage: gpu_gate.sh OUTDIR CONFIG...}; shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODELS=${MODELS:-$REPO/.gpu/models}
ARCHIVE=${ARCHIVE:-$REPO/.gpu/sglang-0.5.17.tar.xz}
START=${SGLANG_START:-"bash $REPO/scripts/gpu/start_sglang.sh $ARCHIVE"}
BUDGET=${GATE_BUDGET_S:-300}
PARALLEL=${GATE_PARALLEL:-1}
PERF=${GATE_PERF:-1}
PERF_SCALE=${GATE_PERF_SCALE:-0.05}
if [ "$PARALLEL" = 1 ]; then WORKERS=${GATE_WORKERS:-6}; else WORKERS=${GATE_WORKERS:-16}; fi
if [ -n "${GATE_PYTEST_ARGS:-}" ]; then eval "EXTRA=($GATE_PYTEST_ARGS)"; else EXTRA=(--timeout 90); fi
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
PLUGIN=()
python3 -c 'import importlib.metadata as m; m.version("pytest-lfm")' 2>/dev/null || PLUGIN=(-p pytest_lfm.plugin)
# the plugin's own dependencies (pydantic, openai, jsonschema, tqdm, ...) come from SGLang's environment
export SITE=${SITE:-$HOME/sglang-site}
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
T0=$(date +%s)
: > "$OUT/timing.txt"
stamp() { echo "$(( $(date +%s) - T0 )) $*" | tee -a "$OUT/timing.txt"; }

config() {  # NAME -> "model variant flags"
  case $1 in
    reasoning) echo "tiny-lfm2-moe 8B-A1B --tool-call-parser lfm2 --reasoning-parser qwen3";;
    thinking)  echo "tiny-lfm2-dense 1.2B-Thinking --tool-call-parser lfm2 --reasoning-parser qwen3-thinking";;
    instruct)  echo "tiny-lfm2-dense 1.2B-Instruct --tool-call-parser lfm2";;
    vl)        echo "tiny-lfm2-vl VL-1.6B --tool-call-parser lfm2 --mm-attention-backend triton_attn";;
    base)      echo "tiny-lfm2-dense 1.2B-Base";;
    *) return 1;;
  esac
}

wait_healthy() {  # PORT -> 0 when /health answers within GATE_HEALTH_S (default 400 s)
  python3 - "$1" "${GATE_HEALTH_S:-400}" <<'PY'
import sys, time, urllib.request
port, limit = sys.argv[1], float(sys.argv[2])
end = time.monotonic() + limit
while time.monotonic() < end:
    try:
        if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=3).status == 200:
            sys.exit(0)
    except Exception:
        pass
    time.sleep(1)
sys.exit(1)
PY
}

suite() {  # NAME PORT VARIANT -> runs the functional suite, then the perf checks; exit 1 on any failure
  local name=$1 port=$2 variant=$3 rc=0 rc2=0
  stamp "$name suite start"
  timeout "$BUDGET" python3 -m pytest "${PLUGIN[@]}" "$REPO/conformance" --rootdir="$REPO" \
    --lfm-server="$variant=http://127.0.0.1:$port" ${LFM_HARDWARE:+--lfm-hardware=$LFM_HARDWARE} \
    --lfm-timeout=60 --lfm-report="$OUT/report-$name" -p no:cacheprovider -v -rfE -n "$WORKERS" -k "not perf" \
    "${EXTRA[@]}" > "$OUT/pytest-$name.txt" 2>&1 || rc=$?
  stamp "$name suite end (exit $rc): $(grep -E '^=+ .*(passed|failed|error)' "$OUT/pytest-$name.txt" | tail -1)"
  if [ "$PERF" = 1 ]; then
    stamp "$name perf start"
    LFM_PERF_SCALE=$PERF_SCALE timeout "$BUDGET" python3 -m pytest "${PLUGIN[@]}" \
      "$REPO/conformance/test_performance.py" --rootdir="$REPO" \
      --lfm-server="$variant=http://127.0.0.1:$port" ${LFM_HARDWARE:+--lfm-hardware=$LFM_HARDWARE} \
      --lfm-timeout=120 --lfm-report="$OUT/report-$name-perf" -p no:cacheprovider -v -rA -n 0 \
      > "$OUT/pytest-$name-perf.txt" 2>&1 || rc2=$?
    stamp "$name perf end (exit $rc2): $(grep -E '^=+ .*(passed|failed|error|skipped)' "$OUT/pytest-$name-perf.txt" | tail -1)"
  fi
  [ "$rc" -eq 0 ] && [ "$rc2" -eq 0 ]
}

stop() { kill -- -"$1" 2>/dev/null; sleep 3; kill -9 -- -"$1" 2>/dev/null; }

status=0
names=() ports=() pgids=() variants=()
for name in "$@"; do
  spec=$(config "$name") || { echo "unknown configuration $name" >&2; status=2; continue; }
  read -r model variant flags <<<"$spec"
  port=$((30100 + ${#names[@]} * 10 + RANDOM % 5))
  extra_flags=()
  [ "$PARALLEL" = 1 ] && extra_flags=(--mem-fraction-static "${GATE_MEM_FRACTION:-0.1}")
  stamp "$name launch ($model as $variant, port $port)"
  # shellcheck disable=SC2086
  pgid=$(READY=$([ "$PARALLEL" = 1 ] && echo pool || echo health) \
         $START "$MODELS/$model" "$port" "$OUT/server-$name.log" $flags "${extra_flags[@]}" | tail -1)
  if ! [[ "$pgid" =~ ^[0-9]+$ ]]; then
    stamp "$name did not start"; tail -30 "$OUT/server-$name.log" >&2; status=1; continue
  fi
  if [ "$PARALLEL" = 1 ]; then
    stamp "$name KV pool allocated (pgid $pgid)"
    names+=("$name"); ports+=("$port"); pgids+=("$pgid"); variants+=("$variant")
  else
    stamp "$name healthy (pgid $pgid)"
    suite "$name" "$port" "$variant" || status=1
    stop "$pgid"
  fi
done

if [ "$PARALLEL" = 1 ]; then
  jobs_=()
  for i in "${!names[@]}"; do
    (
      if wait_healthy "${ports[$i]}"; then
        stamp "${names[$i]} healthy"
        suite "${names[$i]}" "${ports[$i]}" "${variants[$i]}"; rc=$?
      else
        stamp "${names[$i]} not healthy in time"; tail -30 "$OUT/server-${names[$i]}.log" >&2; rc=1
      fi
      stop "${pgids[$i]}"
      exit $rc
    ) &
    jobs_+=($!)
  done
  for j in "${jobs_[@]}"; do wait "$j" || status=1; done
fi
stamp "gate done (exit $status)"
exit $status
