#!/usr/bin/env bash
# Install one SGLang release's *parser code* into DIR for CPU-only parser validation (issue 11).
#
#   scripts/install_sglang_parsers.sh VERSION [DIR]    e.g.  scripts/install_sglang_parsers.sh 0.5.23 .sglang-parsers/0.5.23
#   DIR defaults to $LFM_SGLANG_PARSERS_ROOT/VERSION (LFM_SGLANG_PARSERS_ROOT defaults to .sglang-parsers).
#   Works for every release from 0.5.10 on (0.5.10 ... 0.5.23 checked; 14-35 s and 36-138 MB each).
#
# What it does, and why:
#   1. pip install --no-deps --target DIR sglang==VERSION
#      The wheel (0.5.17: 22 MB, 0.5.23: 39 MB; ~80/130 MB unpacked) pins a CUDA stack (torch, kernels,
#      flashinfer, xgrammar...) that parsing text does not need; --no-deps installs none of it.
#   2. pip install --no-deps --target DIR <the light pure-Python packages the parser modules import>
#      (pinned below; found by importing sglang.srt.function_call.function_call_parser and
#      sglang.srt.parser.reasoning_parser until nothing was missing, on every release 0.5.10-0.5.23).
#      Packages the project's own environment already has (pydantic, numpy, openai, idna, certifi) are
#      not installed: DIR is appended to sys.path, so the environment's copies win anyway.
#   3. Imports the parser modules the way the reference server does (pytest_lfm.reference.upstream:
#      sglang/__init__.py is never executed; xgrammar, transformers and IPython are stubbed) and prints
#      the version found, so a broken install fails here and not in the middle of a test run.
#
# Never installs torch. Use the same Python that runs pytest (activate the project's venv first).
set -euo pipefail

if [[ $# -lt 1 || $# -gt 2 ]]; then
    echo "usage: $0 SGLANG_VERSION [DIR]   (e.g. $0 0.5.23 .sglang-parsers/0.5.23; default DIR:" \
         "\$LFM_SGLANG_PARSERS_ROOT/VERSION)" >&2
    exit 2
fi
VERSION="$1"
DIR="${2:-${LFM_SGLANG_PARSERS_ROOT:-.sglang-parsers}/$VERSION}"
PYTHON="${PYTHON:-python}"

# Light dependencies of sglang's parser modules (imported at module top level by sglang/utils.py,
# sglang/srt/entrypoints/openai/protocol.py, function_call/*.py, parser/*.py). All pure Python except
# msgspec, orjson, pybase64 and regex, which ship small manylinux wheels without dependencies.
DEPS=(
    "msgspec==0.22.0"             # protocol.py
    "orjson==3.13.0"              # function_call/*, serving helpers
    "partial_json_parser==0.2.1.1.post7"  # base_format_detector.py
    "pybase64==1.5.1"             # sglang/utils.py
    "regex==2026.11.15"            # function_call/response_template_structural_tag.py (0.5.23)
    "requests==2.34.2"            # sglang/utils.py
    "urllib3==2.8.0"              # requests
    "charset_normalizer==3.5.2"   # requests
    "tqdm==4.70.1"                # sglang/utils.py
)

mkdir -p "$(dirname "$DIR")"
if [[ -f "$DIR/.installed-$VERSION" ]]; then
    echo "sglang $VERSION parsers already installed in $DIR (delete the directory to reinstall)"
else
    start=$(date +%s)
    # into a scratch directory first, so that an interrupted download never leaves a half tree marked done
    rm -rf "$DIR.partial"
    "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile --upgrade \
        --target "$DIR.partial" "sglang==$VERSION" "${DEPS[@]}"
    rm -rf "$DIR" && mv "$DIR.partial" "$DIR"
    touch "$DIR/.installed-$VERSION"
    echo "installed sglang $VERSION parser code into $DIR in $(( $(date +%s) - start ))s ($(du -sh "$DIR" | cut -f1))"
fi

"$PYTHON" -m pytest_lfm.reference.upstream "$DIR"
