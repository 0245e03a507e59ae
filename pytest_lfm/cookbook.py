"""``python -m pytest_lfm cookbook-cell report.json``: a cell the SGLang cookbook can take, or the reason not.

The cookbook keeps LFM2.5's verified matrix as cells of its ``lfm2.5.jsx`` config::

    { match: { hw, variant, quant, strategy, nodes }, verified: true, env: [...], flags: [...] }

with cookbook ids (variant ``8b-a1b``, ``instruct``, ...; strategy ``default``; nodes ``single``) and
``{{MODEL_NAME}}``/``{{HOST_IP}}``/``{{PORT}}`` placeholders. A "Verified" badge claims the cell was run end
to end on real hardware. This module prints that cell for every report cell that earned it, re-checking the
evidence rather than trusting the status string: status "Verified", the whole suite run uninterrupted and
unfiltered, real weights, the declared hardware confirmed, nothing failed, served over HTTP (launched or
attached, not the in-process engine or the reference server), a variant and hardware of the cookbook's
matrix. Every other cell is refused with each reason.

The flags are the project's recipe for the cell with each value read back from what the server reported it
ran with (``server_args``, i.e. SGLang's ``/server_info``, secrets redacted): a value that differs from the
recipe is printed as run and named under "differs from the recipe" in the evidence. The environment is the
recipe's, which ``--lfm-launch`` sets; for an attached server it cannot be observed, and the evidence says so.

Exit status: 0 every selected cell earned "Verified" and was printed; 1 at least one cell was refused (the
others are still printed); 2 the report could not be read or no cell matched ``--cell``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_lfm.reporting import VERIFIED, redact

#: Project variant id → the cookbook's variant id (lfm2.5.jsx ``variants``).
COOKBOOK_VARIANTS = {"8B-A1B": "8b-a1b", "1.2B-Instruct": "instruct", "1.2B-Thinking": "thinking",
                     "350M": "350m", "1.2B-JP-202606": "jp", "VL-1.6B": "vl", "VL-450M": "vl-450m"}
#: Hardware with a cookbook row (B300 has none yet; its recipe follows B200).
COOKBOOK_HARDWARE = ("h100", "h200", "b200", "b300")
SERVED_MODES = ("launch", "attach")
EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2

#: Recipe flag → the ``server_args`` key SGLang reports its value under.
_FLAG_KEYS = {"--trust-remote-code": "trust_remote_code", "--tp": "tp_size", "--attention-backend": "attention_backend",
              "--mm-attention-backend": "mm_attention_backend", "--reasoning-parser": "reasoning_parser",
              "--tool-call-parser": "tool_call_parser", "--mem-fraction-static": "mem_fraction_static"}
#: The cookbook's flag order.
_ORDER = ("--trust-remote-code", "--model-path", "--tp", "--attention-backend", "--mm-attention-backend",
          "--reasoning-parser", "--tool-call-parser", "--mem-fraction-static", "--host", "--port")
#: Server settings a reviewer should see alongside the flags (deviations a fixture or a kit may need).
_SHOWN_ARGS = ("model_path", "attention_backend", "sampling_backend", "disable_cuda_graph", "context_length",
               "mem_fraction_static", "dtype", "quantization")


@dataclass
class CookbookCell:
    """One report cell judged for the cookbook."""

    key: str
    refusals: list[str] = field(default_factory=list)
    cell: dict[str, Any] = field(default_factory=dict)
    """The cookbook cell (``match``, ``verified``, ``env``, ``flags``), when earned."""
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def earned(self) -> bool:
        """True when the cell earned "Verified" and can be submitted."""
        return not self.refusals


def _same(actual: Any, wanted: str) -> bool:
    if wanted == "":  # a bare switch such as --trust-remote-code
        return actual is True
    try:
        return float(actual) == float(wanted)
    except (TypeError, ValueError):
        return str(actual) == wanted


def _flag_text(flag: str, value: Any) -> str:
    if value is True:
        return flag
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{flag} {value}"


def _recipe(variant_id: str, hardware_id: str) -> tuple[list[list[str]], dict[str, str]] | None:
    from pytest_lfm.errors import LfmError
    from pytest_lfm.hardware import get_hardware
    from pytest_lfm.recipe import recipe_flags
    from pytest_lfm.variants import get_variant

    try:
        variant = get_variant(variant_id)
        return recipe_flags(variant, get_hardware(hardware_id)), dict(variant.recipe.env)
    except LfmError:
        return None


def _refusals(cell: Mapping[str, Any], run: Mapping[str, Any] | None) -> list[str]:
    out: list[str] = []
    status = str(cell.get("status", ""))
    if status != VERIFIED:
        out.append(f"its status is {status!r}, not 'Verified'")
    missing = [k for k in ("weights", "complete", "hardware_confirmed") if k not in cell]
    if missing:
        out.append(f"the report has no {', '.join(missing)} record for it (written before honest cell status): "
                   f"re-run the suite with this pytest-lfm")
    if cell.get("weights", "real") != "real":
        out.append(f"it ran against {cell.get('weights')} weights, not the real checkpoint")
    if cell.get("complete") is False:
        out.append("the whole suite did not run for it (a selection, -x, an interruption or a server that went down)")
    if cell.get("hardware_confirmed") is False:
        out.append(f"the declared hardware {cell.get('hardware')!r} was not confirmed (nvidia-smi on the server's "
                   f"host or the server naming its GPU)")
    counts = cell.get("counts", {})
    bad = {k: counts.get(k, 0) for k in ("failed", "error", "xpassed") if counts.get(k)}
    if bad:
        out.append("checks did not pass: " + ", ".join(f"{n} {k}" for k, n in bad.items()))
    if not counts.get("passed"):
        out.append("no check passed")
    if run:
        if run.get("filtered"):
            out.append("the run was filtered (-k, -m, paths or --lf)")
        if run.get("interrupted"):
            out.append("the run was interrupted")
        if cell.get("id") in run.get("server_down", []):
            out.append("its server went down during the run")
    mode = cell.get("mode")
    if mode not in SERVED_MODES:
        out.append(f"it ran in {mode} mode; a cookbook cell is a served command (--lfm-launch or an attached server)")
    if cell.get("variant") not in COOKBOOK_VARIANTS:
        out.append(f"variant {cell.get('variant')!r} is not in the cookbook's matrix "
                   f"({', '.join(COOKBOOK_VARIANTS)})")
    if cell.get("hardware") not in COOKBOOK_HARDWARE:
        out.append(f"hardware {cell.get('hardware')!r} is not a cookbook hardware ({', '.join(COOKBOOK_HARDWARE)})")
    if not cell.get("server_args"):
        out.append("the server did not report its arguments (/server_info), so the flags it ran with are unknown")
    return out


def judge(report: Mapping[str, Any], source: str = "report.json") -> list[CookbookCell]:
    """Every cell of ``report`` with its refusals, or its cookbook cell and evidence."""
    run = report.get("run")
    env_block = report.get("environment", {})
    out = []
    for cell in report.get("cells", []):
        key = str(cell.get("key", cell.get("id", "?")))
        judged = CookbookCell(key=key, refusals=_refusals(cell, run))
        recipe = _recipe(str(cell.get("variant")), str(cell.get("hardware")))
        if recipe is None:
            judged.refusals.append(f"no recipe for {cell.get('hardware')}/{cell.get('variant')} in this pytest-lfm")
        if judged.refusals or recipe is None:
            out.append(judged)
            continue
        flags_spec, env = recipe
        args: Mapping[str, Any] = redact(cell.get("server_args", {}))
        flags: dict[str, str] = {"--model-path": "--model-path {{MODEL_NAME}}", "--host": "--host {{HOST_IP}}",
                                 "--port": "--port {{PORT}}"}
        differs = []
        for spec in flags_spec:
            flag, wanted = spec[0], (spec[1] if len(spec) > 1 else "")
            key_name = _FLAG_KEYS.get(flag)
            if key_name is None or key_name not in args:
                judged.refusals.append(f"the server did not report {key_name or flag}, so whether it ran with "
                                       f"{' '.join(spec)} is unknown")
                continue
            actual = args[key_name]
            if actual is None or actual is False:
                differs.append(f"{' '.join(spec)} (the server ran without it)")
                continue
            flags[flag] = _flag_text(flag, actual)
            if not _same(actual, wanted):
                differs.append(f"{' '.join(spec)} (the server ran with {flags[flag]})")
        if judged.refusals:
            out.append(judged)
            continue
        strategy = str(cell.get("strategy", "tp1"))
        nodes = int(cell.get("nodes", 1))
        judged.cell = {
            "match": {"hw": cell["hardware"], "variant": COOKBOOK_VARIANTS[str(cell["variant"])],
                      "quant": str(cell.get("quantization", "bf16")),
                      "strategy": "default" if strategy == "tp1" else strategy,
                      "nodes": "single" if nodes == 1 else f"{nodes}-nodes"},
            "verified": True,
            "env": [f"{k}={v}" for k, v in env.items()],
            "flags": [flags[f] for f in _ORDER if f in flags],
        }
        counts = cell.get("counts", {})
        judged.evidence = {
            "report": source + (f" (merged from {len(env_block['merged_from'])} reports)"
                                if env_block.get("merged_from") else ""),
            "cell": key,
            "sglang_version": cell.get("sglang_version"),
            "date": report.get("generated_at"),
            "plugin_version": env_block.get("plugin_version"),
            "gpu": env_block.get("gpu", {}).get("name"),
            "mode": cell.get("mode"),
            "checks": {k: v for k, v in counts.items() if v},
            "planned": cell.get("planned"),
            "known_failures": sorted({str(r.get("check") or r.get("nodeid")) for r in cell.get("checks", [])
                                      if r.get("outcome") == "xfailed"}),
            "selection": _selection(run) if run else "Selection: the whole suite for this cell (complete; a merged "
                                                      "report keeps no run block)",
            "env_source": ("set by --lfm-launch from the recipe" if cell.get("mode") == "launch" else
                           "the recipe's; not observable on an attached server: confirm it was set"),
            "differs_from_recipe": differs,
            "server_args": {k: args[k] for k in _SHOWN_ARGS if k in args},
        }
        out.append(judged)
    return out


def _selection(run: Mapping[str, Any]) -> str:
    from pytest_lfm.reporting import _run_text

    return _run_text(run)


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def render_cell(judged: CookbookCell) -> str:
    """The cell as lfm2.5.jsx writes it, under comment lines carrying the evidence."""
    c, e = judged.cell, judged.evidence
    counts = ", ".join(f"{n} {k}" for k, n in e["checks"].items())
    lines = [f"// {e['cell']}: verified by pytest-lfm {e['plugin_version']} on SGLang {e['sglang_version']}, "
             f"{e['date']}",
             f"// evidence: {counts} (of {e['planned']} planned); {e['selection']}",
             f"// report: {e['report']}; GPU: {e['gpu']}; mode: {e['mode']}; env: {e['env_source']}"]
    if e["known_failures"]:
        lines.append(f"// declared known failures (xfailed): {', '.join(e['known_failures'])}")
    for d in e["differs_from_recipe"]:
        lines.append(f"// differs from the recipe: {d}")
    lines.append("// server reported: " + ", ".join(f"{k}={v}" for k, v in e["server_args"].items()))
    m = c["match"]
    lines += ["{",
              "  match: { " + ", ".join(f"{k}: {_js(m[k])}" for k in ("hw", "variant", "quant", "strategy", "nodes"))
              + " },",
              "  verified: true,"]
    lines += ["  env: [],"] if not c["env"] else ["  env: [", *[f"    {_js(v)}," for v in c["env"]], "  ],"]
    lines += ["  flags: [", *[f"    {_js(f)}," for f in c["flags"]], "  ],", "},"]
    return "\n".join(lines) + "\n"


def select(judged: Sequence[CookbookCell], wanted: Sequence[str]) -> list[CookbookCell]:
    """Cells whose key is one of ``wanted`` or starts with it (``h100/8B-A1B`` picks ``h100/8B-A1B/bf16/tp1/1``)."""
    if not wanted:
        return list(judged)
    return [j for j in judged if any(j.key == w or j.key.startswith(w.rstrip("/") + "/") for w in wanted)]
