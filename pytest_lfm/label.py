"""What an attached server says it is, checked against what the user declared.

* A declared variant (``--lfm-variant`` or ``VARIANT=URL``) that the server's ``/model_info``,
  ``/server_info`` or ``/v1/models`` contradicts (they name another LFM2.5 variant) is one usage error
  naming both, unless ``--lfm-any-model-name`` says the served name is a custom one. Names that match no
  variant (a local directory, a custom ``--served-model-name``) are not a contradiction.
* A server whose ``/server_info`` says ``"reference_server": true`` is the bundled reference server,
  attached or started: real-weights checks skip there, as with ``--lfm-server=reference``.
"""

from __future__ import annotations

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.server.http import ProbeResult
from pytest_lfm.variants import Variant, detect_variant


def served_names(result: ProbeResult) -> list[tuple[str, str]]:
    """(where, name) of every model name the server reported."""
    out = [("/model_info model_path", result.model_info.get("model_path")),
           ("/server_info model_path", result.server_info.get("model_path")),
           ("/server_info served_model_name", result.server_info.get("served_model_name")),
           *(("/v1/models id", m) for m in result.models)]
    return [(where, str(name)) for where, name in out if name]


def check_label(declared: Variant, result: ProbeResult, url: str, how: str, override: bool = False) -> None:
    """Raise :class:`LfmUsageError` when the server names another variant than ``declared``."""
    if override:
        return
    names = served_names(result)
    found = [(where, name, v) for where, name in names if (v := detect_variant(name)) is not None]
    if not found or any(v.id == declared.id for _, _, v in found):
        return
    where, name, other = found[0]
    raise LfmUsageError(
        f"{url} was declared as {declared.id} ({how}), but the server serves {other.id}: {where} is {name!r}",
        tried=[f"{w}: {n}" for w, n in names],
        remedy=f"declare the variant it serves (--lfm-variant={other.id} or {other.id}={url}) or point at the "
               f"server of {declared.id}; if {declared.id} is served under a custom model name, pass "
               "--lfm-any-model-name",
    )


def is_reference_server(result: ProbeResult) -> bool:
    """The bundled reference server says so in ``/server_info``."""
    return result.server_info.get("reference_server") is True
