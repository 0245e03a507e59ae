"""Option names, their environment and ini twins, help texts, and value parsers.

Precedence, resolved once in :mod:`pytest_lfm.config`: command line > environment > ini > default.
Every parser raises :class:`~pytest_lfm.errors.LfmUsageError` with what was given and what is expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from pytest_lfm.errors import LfmUsageError

REFERENCE = "reference"


@dataclass(frozen=True)
class OptionSpec:
    """One ``--lfm-*`` option with its ini key and environment variable."""

    flag: str
    dest: str
    env: str
    help: str
    multiple: bool = False
    default: str | None = None
    metavar: str | None = None
    boolean: bool = False

    @property
    def ini(self) -> str:
        """The ini key, equal to the option's dest (pytest-postgresql's convention)."""
        return self.dest


SERVER = OptionSpec(
    "--lfm-server", "lfm_server", "LFM_SERVER",
    "SGLang server(s) to check: HOST:PORT, a URL, VARIANT=URL (repeat for several variants), or "
    "'reference' for the bundled reference server (one per selected variant). Env: comma-separated.",
    multiple=True, metavar="TARGET",
)
VARIANT = OptionSpec(
    "--lfm-variant", "lfm_variant", "LFM_VARIANT",
    "LFM2.5 variant id(s) to check; globs allowed, repeatable (e.g. '1.2B-*'). With one attached server: "
    "the variant it serves (default: detected from /model_info or /v1/models). With 'reference': which "
    "variants to start (default: all nine).",
    multiple=True, metavar="ID",
)
HARDWARE = OptionSpec(
    "--lfm-hardware", "lfm_hardware", "LFM_HARDWARE",
    "GPU the server runs on: h100, h200, b200, b300 or unknown (default: nvidia-smi when the server is on "
    "this host, else unknown).",
    metavar="ID",
)
API_KEY = OptionSpec(
    "--lfm-api-key", "lfm_api_key", "LFM_API_KEY",
    "API key of a server started with --api-key (sent as a Bearer token; never printed).",
    metavar="KEY",
)
TIMEOUT = OptionSpec(
    "--lfm-timeout", "lfm_timeout", "LFM_TIMEOUT",
    "Seconds one request may take before it fails (default 120).", default="120", metavar="SECONDS",
)
REPORT = OptionSpec(
    "--lfm-report", "lfm_report", "LFM_REPORT",
    "Directory to write report.json, matrix.md and matrix.html into at the end of the run.", metavar="DIR",
)
FAULT = OptionSpec(
    "--lfm-reference-fault", "lfm_reference_fault", "LFM_REFERENCE_FAULT",
    "Start the reference server with this fault mode (repeatable); used to prove that checks can fail. "
    "`python -m pytest_lfm.reference --list-faults` lists them.",
    multiple=True, metavar="NAME",
)
IMAGE_HOST = OptionSpec(
    "--lfm-image-host", "lfm_image_host", "LFM_IMAGE_HOST",
    "Host name or address a remote server should use to fetch the suite's images over http "
    "(default 127.0.0.1: the server runs on this host).", default="127.0.0.1", metavar="HOST",
)

LAUNCH = OptionSpec(
    "--lfm-launch", "lfm_launch", "LFM_LAUNCH",
    "Start one SGLang server per selected variant from the verified recipe for the detected or declared "
    "hardware (--lfm-hardware), run the suite against it, and stop it at the end. Not with --lfm-server.",
    boolean=True,
)
ANY_MODEL_NAME = OptionSpec(
    "--lfm-any-model-name", "lfm_any_model_name", "LFM_ANY_MODEL_NAME",
    "Accept the declared variant (--lfm-variant or VARIANT=URL) even when the server's /model_info or "
    "/v1/models names another LFM2.5 variant (a custom served model name). Without it such a mismatch is "
    "a usage error naming both.",
    boolean=True,
)
PRINT_RECIPE = OptionSpec(
    "--lfm-print-recipe", "lfm_print_recipe", "LFM_PRINT_RECIPE",
    "Print the SGLang launch command of every selected variant for the hardware (--lfm-hardware or "
    "detected) and framing, with secrets shown as <secret>, and exit.",
    boolean=True,
)
MODEL_PATH = OptionSpec(
    "--lfm-model-path", "lfm_model_path", "LFM_MODEL_PATH",
    "Launch VARIANT (or, with --lfm-engine, create its engine) from a local checkpoint: VARIANT=PATH "
    "(repeatable; air-gapped runs). Env: comma-separated.",
    multiple=True, metavar="VARIANT=PATH",
)
FRAMING = OptionSpec(
    "--lfm-framing", "lfm_framing", "LFM_FRAMING",
    "How launch mode runs SGLang: 'python' (sglang serve in this environment, default) or 'docker' "
    "(docker run --gpus all ... lmsysorg/sglang:TAG sglang serve ...).",
    default="python", metavar="python|docker",
)
SGLANG_IMAGE = OptionSpec(
    "--lfm-sglang-image", "lfm_sglang_image", "LFM_SGLANG_IMAGE",
    "Docker image for --lfm-framing=docker: a tag of lmsysorg/sglang (e.g. v0.5.17, dev-cu13) or a full "
    "image reference (default v0.5.10, with -cu13 on B300).",
    metavar="TAG",
)
STARTUP_TIMEOUT = OptionSpec(
    "--lfm-startup-timeout", "lfm_startup_timeout", "LFM_STARTUP_TIMEOUT",
    "Seconds a launched server may take to answer /health_generate (default 600).",
    default="600", metavar="SECONDS",
)
LOG_DIR = OptionSpec(
    "--lfm-log-dir", "lfm_log_dir", "LFM_LOG_DIR",
    "Directory for the launched servers' logs, one sglang-VARIANT.log each (default: a new temp directory).",
    metavar="DIR",
)
SGLANG_COMMAND = OptionSpec(
    "--lfm-sglang-command", "lfm_sglang_command", "LFM_SGLANG_COMMAND",
    "The SGLang executable (default 'sglang'), a Python interpreter with SGLang installed (runs "
    "-m sglang.launch_server), or any command taking 'serve' and SGLang's flags; shell-style quoting.",
    metavar="CMD",
)
SGLANG_ARGS = OptionSpec(
    "--lfm-sglang-args", "lfm_sglang_args", "LFM_SGLANG_ARGS",
    "Extra SGLang flags appended to the recipe (shell-style quoting), e.g. '--context-length 2048'; flags "
    "renamed between releases are translated for the SGLang version.",
    metavar="ARGS",
)
REFERENCE_PARSERS = OptionSpec(
    "--lfm-reference-parsers", "lfm_reference_parsers", "LFM_REFERENCE_PARSERS",
    "Run the reference server with a real SGLang release's tool-call and reasoning parser code instead of "
    "the project's: DIR is an sglang tree installed by scripts/install_sglang_parsers.sh VERSION DIR (CPU "
    "only, no torch). The server then reports that release's version, so version gates apply to it.",
    metavar="DIR",
)
REFERENCE_VERSION = OptionSpec(
    "--lfm-reference-version", "lfm_reference_version", "LFM_REFERENCE_VERSION",
    "The SGLang release whose behaviour the reference server emulates (default 0.5.23; e.g. 0.5.17 or 0.5.10): "
    "parser details, validation ranges, media-error status. Version gates then apply as for that release.",
    default="0.5.23", metavar="VERSION",
)

ENGINE = OptionSpec(
    "--lfm-engine", "lfm_engine", "LFM_ENGINE",
    "Offline engine mode: create one sgl.Engine per selected variant in this pytest process (one at a time) "
    "from --lfm-model-path VARIANT=PATH with the recipe's flags, run the checks that need no HTTP through it, "
    "and shut it down at the end. Not with --lfm-server, --lfm-launch or xdist (-n).",
    boolean=True,
)
ENGINE_ARG = OptionSpec(
    "--lfm-engine-arg", "lfm_engine_arg", "LFM_ENGINE_ARG",
    "Engine mode: an sgl.Engine keyword argument KEY=VALUE (repeatable; VALUE read as JSON when it is, e.g. "
    "mem_fraction_static=0.5, disable_cuda_graph=true; null removes a default). Env: comma-separated.",
    multiple=True, metavar="KEY=VALUE",
)

STEP_SUMMARY = OptionSpec(
    "--lfm-step-summary", "lfm_step_summary", "LFM_STEP_SUMMARY",
    "Append a compact markdown summary of the run (each cell's status, failed checks first, the report's "
    "paths) to this file at the end of the session. Default: $GITHUB_STEP_SUMMARY when GitHub Actions sets it.",
    metavar="PATH",
)

ALL_OPTIONS: tuple[OptionSpec, ...] = (SERVER, VARIANT, HARDWARE, API_KEY, TIMEOUT, REPORT, FAULT, IMAGE_HOST,
                                       LAUNCH, PRINT_RECIPE, MODEL_PATH, FRAMING, SGLANG_IMAGE, STARTUP_TIMEOUT,
                                       LOG_DIR, SGLANG_COMMAND, SGLANG_ARGS, REFERENCE_PARSERS, REFERENCE_VERSION,
                                       ENGINE, ENGINE_ARG, ANY_MODEL_NAME, STEP_SUMMARY)


@dataclass(frozen=True)
class ServerSpec:
    """A parsed ``--lfm-server`` value."""

    url: str | None
    variant: str | None = None

    @property
    def is_reference(self) -> bool:
        """True for the bundled reference server."""
        return self.url is None


_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(?P<port>[^/]*)$")


def parse_server(value: str) -> ServerSpec:
    """Parse ``HOST:PORT``, ``http(s)://HOST[:PORT][/v1]``, ``VARIANT=...`` or ``reference``."""
    raw = value.strip()
    variant: str | None = None
    if "=" in raw and not raw.lower().startswith(("http://", "https://")):
        variant, raw = (part.strip() for part in raw.split("=", 1))
        if not variant:
            raise _bad_server(value, "the part before '=' must be a variant id")
    if raw.lower() == REFERENCE:
        return ServerSpec(url=None, variant=variant)
    if "://" in raw:
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https"):
            raise _bad_server(value, f"scheme {parts.scheme!r} is not http or https")
        if not parts.hostname:
            raise _bad_server(value, "the URL has no host")
        try:
            port = parts.port
        except ValueError:
            raise _bad_server(value, "the port is not a number between 1 and 65535") from None
        if port == 0:
            raise _bad_server(value, "port 0 is not a server port")
        path = parts.path.rstrip("/")
        if path.endswith("/v1"):
            path = path[: -len("/v1")]
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return ServerSpec(url=f"{parts.scheme}://{netloc}{path}", variant=variant)
    m = _HOSTPORT.match(raw)
    if not m:
        raise _bad_server(value, "expected HOST:PORT, a URL, VARIANT=URL or 'reference'")
    port_text = m.group("port")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _bad_server(value, f"port {port_text!r} is not a number between 1 and 65535")
    return ServerSpec(url=f"http://{m.group('host')}:{int(port_text)}", variant=variant)


def _bad_server(value: str, why: str) -> LfmUsageError:
    return LfmUsageError(
        f"--lfm-server {value!r}: {why}",
        remedy="pass e.g. --lfm-server=localhost:30000, --lfm-server=http://gpu-1:30000, "
        "--lfm-server=1.2B-Instruct=http://gpu-1:30000 or --lfm-server=reference",
    )


def parse_timeout(value: str) -> float:
    """A positive number of seconds."""
    try:
        seconds = float(value)
    except ValueError:
        raise LfmUsageError(f"--lfm-timeout {value!r} is not a number", remedy="pass seconds, e.g. 120") from None
    if not seconds > 0:
        raise LfmUsageError(f"--lfm-timeout {value!r} must be positive", remedy="pass seconds, e.g. 120")
    return seconds


def parse_bool(flag: str, value: object) -> bool:
    """``1/true/yes/on`` or ``0/false/no/off`` (any case), as env and ini values spell booleans."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise LfmUsageError(f"{flag} {value!r} is not a boolean", remedy="use 1/true/yes or 0/false/no")


def parse_model_path(value: str) -> tuple[str, str]:
    """``VARIANT=PATH`` → (variant id as given, path)."""
    variant, sep, path = value.partition("=")
    if not sep or not variant.strip() or not path.strip():
        raise LfmUsageError(f"--lfm-model-path {value!r}: expected VARIANT=PATH",
                            remedy="pass e.g. --lfm-model-path=1.2B-Instruct=/models/LFM2.5-1.2B-Instruct")
    return variant.strip(), path.strip()


def parse_startup_timeout(value: str) -> float:
    """A positive number of seconds for --lfm-startup-timeout."""
    try:
        seconds = float(value)
    except ValueError:
        raise LfmUsageError(f"--lfm-startup-timeout {value!r} is not a number",
                            remedy="pass seconds, e.g. 600") from None
    if not seconds > 0:
        raise LfmUsageError(f"--lfm-startup-timeout {value!r} must be positive", remedy="pass seconds, e.g. 600")
    return seconds


def split_env_list(value: str) -> list[str]:
    """Split a comma-separated environment value, dropping empty items."""
    return [item.strip() for item in value.split(",") if item.strip()]
