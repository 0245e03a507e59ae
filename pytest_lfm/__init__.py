"""pytest-lfm: a pytest plugin and conformance suite proving that an SGLang server serves Liquid AI's
LFM2.5 models correctly.

``pytest --lfm-server=HOST:PORT`` checks a running server; ``pytest --lfm-server=reference`` checks the
bundled reference server (no GPU needed). The library modules are importable without pytest.
"""

from pytest_lfm.lfm2 import (
    Dialect,
    parse_tool_calls,
    render_json_tool_calls,
    render_tool_calls,
    split_reasoning,
)
from pytest_lfm.variants import Variant, get_variant, load_variants

__all__ = [
    "Dialect",
    "Variant",
    "get_variant",
    "load_variants",
    "parse_tool_calls",
    "render_json_tool_calls",
    "render_tool_calls",
    "split_reasoning",
]
