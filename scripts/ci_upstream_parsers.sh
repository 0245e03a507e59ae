#!/usr/bin/env bash
# CI: sweep every SGLang release from 0.5.10 on with its own parser code, CPU only (issues 11 and 18).
#
#   scripts/ci_upstream_parsers.sh [VERSION ...]        default: every release in RELEASES below
#
# For each release:
#   1. install its parser code into $LFM_SGLANG_PARSERS_ROOT/VERSION (scripts/install_sglang_parsers.sh:
#      pip install --no-deps, no torch; cached while the directory exists — a cached tree costs nothing);
#   2. run the model-free corpora (test_tool_parser.py, test_reasoning_parser.py) and the end-to-end reasoning
#      and tool-call checks (test_reasoning.py, test_tool_calls.py) through the reference server with
#      --lfm-reference-parsers, which makes /parse_function_call, /separate_reasoning and the chat path use
#      that release's FunctionCallParser / ReasoningParser and makes /server_info report its version, so
#      the version gates and known-failure expectations apply to it. One variant per parser configuration:
#      8B-A1B (qwen3 + lfm2), 1.2B-Thinking (qwen3-thinking + lfm2), 1.2B-Instruct (lfm2 only).
# Releases run LFM_SWEEP_JOBS at a time (default 2); each writes its log to $LFM_SWEEP_LOGS/VERSION.log and its
# report to $LFM_SWEEP_LOGS/VERSION.report/ (report.json, matrix.md), for `python -m pytest_lfm diff`.
# At the end a table (scripts/sweep_summary.py) gives, per release, passed / failed / xfailed / xpassed /
# skipped / errors and the seconds it took (install, load and checks), then each red release's failing
# check ids (FAILED, ERROR, XPASS: a strict expected failure that passed); LOGS/SWEEP.md has them all.
# Then the package index is asked whether a release newer than the sweep's newest exists: one is reported,
# not failed (and an unreachable index is said so, not failed).
#
# Fails when any release fails to install or load, when any check fails (a strict expected failure that
# passes fails too), and when no check ran (pytest exit code 5).
# Environment: PYTHON (default python), LFM_SGLANG_PARSERS_ROOT (default .sglang-parsers), LFM_SWEEP_JOBS,
# LFM_SWEEP_LOGS (default a temporary directory), LFM_SWEEP_SUMMARY (also write the table there, markdown),
# LFM_UPSTREAM_CHECKS (the modules), LFM_SWEEP_VARIANTS (the variants, space-separated).
set -uo pipefail

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.."
PYTHON="${PYTHON:-python}"
ROOT="${LFM_SGLANG_PARSERS_ROOT:-.sglang-parsers}"
JOBS="${LFM_SWEEP_JOBS:-2}"
read -r -a CHECKS <<< "${LFM_UPSTREAM_CHECKS:-conformance/tool_calls/test_tool_parser.py conformance/reasoning/test_reasoning_parser.py conformance/reasoning/test_reasoning.py conformance/tool_calls/test_tool_calls.py}"
read -r -a VARIANTS <<< "${LFM_SWEEP_VARIANTS:-8B-A1B 1.2B-Thinking 1.2B-Instruct}"

# Every SGLang release from 0.5.10 (the LFM2 baseline) on; for a release with post-releases, the last one.
RELEASES=(0.5.10 0.5.11 0.5.12.post1 0.5.13.post1 0.5.14 0.5.15.post1 0.5.16 0.5.17 0.5.18 0.5.19 0.5.20
          0.5.21 0.5.22 0.5.23)

# ---- one release (run by xargs below): install and load (cached), then pytest into LOGDIR/VERSION.log;
# its exit code ("install" when it could not be installed or loaded) and seconds beside it
if [[ "${1:-}" == "--one" ]]; then
    version="$2"; logdir="$3"
    start=$(date +%s)
    if ! PYTHON="$PYTHON" scripts/install_sglang_parsers.sh "$version" "$ROOT/$version" \
            > "$logdir/$version.install.log" 2>&1; then
        echo install > "$logdir/$version.rc"
        echo $(( $(date +%s) - start )) > "$logdir/$version.seconds"
        { echo "FAILED: sglang $version: could not install or load its parser code into $ROOT/$version:"
          grep -E "^error:|^ERROR|^  - |^To fix" "$logdir/$version.install.log" | head -8; } >&2
        exit 0
    fi
    args=()
    for v in "${VARIANTS[@]}"; do args+=("--lfm-variant=$v"); done
    "$PYTHON" -m pytest "${CHECKS[@]}" --lfm-server=reference --lfm-reference-parsers="$ROOT/$version" \
        "${args[@]}" --lfm-report="$logdir/$version.report" -p no:cacheprovider -q -rfxXE --tb=short \
        > "$logdir/$version.log" 2>&1
    echo $? > "$logdir/$version.rc"
    echo $(( $(date +%s) - start )) > "$logdir/$version.seconds"
    echo "    sglang $version: pytest exit code $(cat "$logdir/$version.rc") in $(cat "$logdir/$version.seconds")s"
    exit 0
fi

VERSIONS=("$@")
[[ ${#VERSIONS[@]} -eq 0 ]] && VERSIONS=("${RELEASES[@]}")
LOGS="${LFM_SWEEP_LOGS:-$(mktemp -d "${TMPDIR:-/tmp}/lfm-sweep.XXXXXX")}"
mkdir -p "$LOGS"
SWEEP_START=$(date +%s)
status=0
echo "=== ${#VERSIONS[@]} releases (installed under $ROOT, cached) x ${CHECKS[*]} x variants ${VARIANTS[*]}," \
     "$JOBS at a time (logs: $LOGS)"
printf '%s\n' "${VERSIONS[@]}" | xargs -P "$JOBS" -I{} bash "$SELF" --one {} "$LOGS"

# ---- the table (and LOGS/SWEEP.md with every failing check id)
echo
echo "=== SGLang release sweep: $(( $(date +%s) - SWEEP_START ))s in all (logs and SWEEP.md in $LOGS)"
"$PYTHON" scripts/sweep_summary.py "$LOGS" "${VERSIONS[@]}" || status=1
if [[ -n "${LFM_SWEEP_SUMMARY:-}" ]]; then
    cp "$LOGS/SWEEP.md" "$LFM_SWEEP_SUMMARY"
fi

# ---- a newer release on the index: reported, never failed
echo
"$PYTHON" scripts/newer_sglang_release.py "${RELEASES[@]}" || true

if [[ $status -ne 0 ]]; then
    echo "FAILED: the SGLang release sweep is red (rows above; each release's full output is in $LOGS/VERSION.log)" >&2
fi
exit $status
