#!/usr/bin/env bash
# CI: run the model-free conformance checks against real SGLang releases' parser code, CPU only (issue 11).
#
#   scripts/ci_upstream_parsers.sh [VERSION ...]        default: 0.5.23 0.5.17
#
# For each release: install its parser code into .sglang-parsers/VERSION (scripts/install_sglang_parsers.sh:
# pip install --no-deps, no torch; cached between runs while the directory exists), then run the tool-call
# and reasoning corpora and their property-based differentials through the reference server with
# --lfm-reference-parsers, which makes /parse_function_call, /separate_reasoning and the chat path use that
# release's FunctionCallParser / ReasoningParser, and makes /server_info report that release's version, so
# the corpus's version gates and known-failure expectations apply to it.
#
# Fails when any check fails (an expected failure that passes is strict, so it fails too), and when no
# check ran (pytest exit code 5: a renamed module or a deselecting -k must not pass silently).
# Environment: PYTHON (default python), LFM_SGLANG_PARSERS_ROOT (default .sglang-parsers),
# LFM_UPSTREAM_CHECKS (the modules to run; default the two model-free parser modules).
set -uo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
ROOT="${LFM_SGLANG_PARSERS_ROOT:-.sglang-parsers}"
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -eq 0 ]] && VERSIONS=(0.5.23 0.5.17)
read -r -a CHECKS <<< "${LFM_UPSTREAM_CHECKS:-conformance/tool_calls/test_tool_parser.py conformance/reasoning/test_reasoning_parser.py}"

status=0
for version in "${VERSIONS[@]}"; do
    dir="$ROOT/$version"
    echo "=== SGLang $version parsers ($dir)"
    start=$(date +%s)
    if ! PYTHON="$PYTHON" scripts/install_sglang_parsers.sh "$version" "$dir"; then
        echo "FAILED: could not install or import sglang $version's parser code into $dir" >&2
        status=1
        continue
    fi
    "$PYTHON" -m pytest "${CHECKS[@]}" --lfm-server=reference --lfm-reference-parsers="$dir" \
        --lfm-variant=8B-A1B --lfm-variant=1.2B-Thinking -p no:cacheprovider -q -rfxXE
    rc=$?
    if [[ $rc -eq 5 ]]; then
        echo "FAILED: no model-free check ran against sglang $version (pytest exit code 5)" >&2
        status=1
    elif [[ $rc -ne 0 ]]; then
        echo "FAILED: model-free checks against sglang $version (pytest exit code $rc)" >&2
        status=1
    else
        echo "=== SGLang $version: model-free checks passed ($(( $(date +%s) - start ))s)"
    fi
done
exit $status
