"""Run SGLang's own ``bench_serving`` (``sglang.benchmark.serving``) on a machine without SGLang's runtime.

    PYTHONPATH=SGLANG_TREE python scripts/cpu/bench_serving_lite.py [bench_serving options...]

SGLANG_TREE is a release's python tree (scripts/install_sglang_parsers.sh installs one without its
dependencies). bench_serving itself needs only aiohttp, numpy, orjson, requests, tqdm, transformers (and pybase64,
psutil, pyzmq for the modules it imports), but it reaches two constants through ``sglang`` packages whose
``__init__`` modules import the GPU runtime. This launcher registers those packages without running their
``__init__`` (the submodules bench_serving uses are plain Python) and gives ``sglang.srt.disaggregation.utils``
the one name bench_serving takes from it, read from the release's own source. Measurement tooling only
(scripts/cpu/side_by_side_reference.sh): nothing of it ships in the plugin.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path


def _package(name: str, path: Path) -> None:
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    sys.modules[name] = module


def main() -> None:
    spec = importlib.util.find_spec("sglang")
    if spec is None or spec.origin is None:
        raise SystemExit("sglang is not importable: put a release's tree on PYTHONPATH "
                         "(scripts/install_sglang_parsers.sh VERSION DIR installs one)")
    root = Path(spec.origin).parent
    _package("sglang", root)
    for name in ("srt", "srt/utils", "srt/disaggregation"):
        _package("sglang." + name.replace("/", "."), root / name)
    source = (root / "srt" / "disaggregation" / "utils.py").read_text(encoding="utf-8")
    found = re.search(r'^FAKE_BOOTSTRAP_HOST\s*=\s*"([^"]+)"', source, re.M)
    utils = types.ModuleType("sglang.srt.disaggregation.utils")
    utils.FAKE_BOOTSTRAP_HOST = found.group(1) if found else "2.2.2.2"  # type: ignore[attr-defined]
    sys.modules[utils.__name__] = utils
    serving = importlib.import_module("sglang.benchmark.serving")
    serving.cli_main()


if __name__ == "__main__":
    main()
