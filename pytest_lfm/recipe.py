"""The verified SGLang launch recipe for every (hardware, variant) cell, as pure functions.

Sources: the SGLang cookbook's LFM2.5 command generator (verified matrix: h100, h200, b200 × the seven
serving variants; docs/sglang-behaviour.md §11) and Liquid's SGLang page (Python and Docker framings,
``HF_TOKEN``, the ``-cu13`` image for B300/GB300). Every cell is ``--trust-remote-code --tp 1`` plus (the
cookbook's generated commands carry ``--trust-remote-code``, read from its source in the project's notes;
Liquid's minimal commands do not. It is kept because the cookbook's "Verified" badge belongs to the exact
command: "any actual change flips it to Not Verified"):

* the variant's parsers (``--tool-call-parser lfm2``; ``--reasoning-parser qwen3`` for 8B-A1B,
  ``qwen3-thinking`` for 1.2B-Thinking). The original 1.2B-JP launches without ``--tool-call-parser`` and
  1.2B-Base without any parser (§11.1; the cookbook: "launch the same way with the model path swapped");
* on Blackwell (B200, and B300 which follows it) ``--attention-backend`` from the variant's recipe facts;
* for VL models ``--mm-attention-backend`` of the hardware (fa3 on Hopper, fa4 on Blackwell) and the
  environment ``SGLANG_USE_CUDA_IPC_TRANSPORT=1 SGLANG_USE_IPC_POOL_HANDLE_CACHE=1``;
* ``--mem-fraction-static 0.8`` for VL-450M.

:func:`build_recipe` returns the argv and environment; :meth:`Recipe.render` prints them as a shell
command with every secret shown as ``<secret>``. Nothing here starts a process.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from packaging.version import InvalidVersion, Version

from pytest_lfm.errors import LfmUsageError
from pytest_lfm.hardware import Hardware
from pytest_lfm.redaction import SECRET as SECRET  # re-exported
from pytest_lfm.redaction import SECRET_NAME, redact_text
from pytest_lfm.redaction import secret_values as secret_values  # re-exported
from pytest_lfm.variants import Variant

Framing = Literal["python", "docker"]
FRAMINGS: tuple[str, ...] = ("python", "docker")
IMAGE_REPO = "lmsysorg/sglang"
# The image is chosen per variant (variants.toml ``recipe.image_tag`` with its ``image_reason``): the seeds
# disagree. Liquid's page says "All LFM model types ... are supported in the v0.5.10 tag" and names two
# LFM2.5 checkpoints (1.2B-Instruct, VL-1.6B): those get the pinned v0.5.10. The cookbook says LFM2.5 support
# ships on SGLang main and wraps the dev image: every other LFM2.5 checkpoint gets dev. B300/GB300 (CUDA 13)
# append the hardware's docker_image_suffix ("-cu13"). --lfm-sglang-image overrides.
DEFAULT_IMAGE_TAG = "v0.5.10"
DEFAULT_PORT = 30000
DEFAULT_HOST = "0.0.0.0"
HF_CACHE_HOST = "~/.cache/huggingface"
HF_CACHE_CONTAINER = "/root/.cache/huggingface"
# Environment variables handed to a docker container by name (the value never enters argv).
DOCKER_PASSTHROUGH = ("HF_TOKEN",)
OPTIONAL_PASSTHROUGH = ("HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT",
                        "SGLANG_MAMBA_CONV_DTYPE")
_SAFE = re.compile(r"^[A-Za-z0-9_./:=,@%+~-]+$")

# Version differences (docs/sglang-behaviour.md §8, §12). ``sglang serve`` is the recommended entry point
# from the releases Liquid documents (0.5.10); older ones only have ``python -m sglang.launch_server``.
SERVE_SINCE = Version("0.5.10")
# --mamba-scheduler-strategy was renamed --mamba-radix-cache-strategy: 0.5.17 accepts both (the old one
# as a deprecated alias), 0.5.23 only the new one, releases before 0.5.17 only the old one.
FLAG_RENAMES: tuple[tuple[str, str, Version], ...] = (
    ("--mamba-scheduler-strategy", "--mamba-radix-cache-strategy", Version("0.5.17")),
)

redact = redact_text  # the text form, under the name callers and tests use


@dataclass(frozen=True)
class Recipe:
    """One launch command: what to execute, with which environment, and how to print it."""

    variant: str
    hardware: str
    framing: Framing
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables the server needs on top of the caller's environment (python framing: set for the child)."""
    lines: tuple[tuple[int, tuple[str, ...]], ...] = ()
    """(indent level, display tokens) per printed line; secrets are already ``<secret>`` here."""
    env_prefix: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()

    def render(self, extra_secrets: Iterable[str] = ()) -> str:
        """The command as a copy-pasteable shell snippet, with every secret value shown as ``<secret>``."""
        out: list[str] = []
        for i, (level, tokens) in enumerate(self.lines):
            text = " ".join(_quote(t) for t in tokens)
            if i == 0 and self.env_prefix:
                text = " ".join(self.env_prefix) + " " + text
            out.append("    " * level + text)
        return redact(" \\\n".join(out), (*self.secrets, *extra_secrets))

    def shell(self) -> str:
        """One-line form of the argv (redacted), for logs and error messages."""
        prefix = " ".join(f"{k}={v}" for k, v in self.env.items()) if self.framing == "python" else ""
        cmd = " ".join(shlex.quote(a) for a in self.argv)
        return redact(f"{prefix} {cmd}".strip(), self.secrets)


def parse_sglang_version(text: str | None) -> Version | None:
    """A version from ``0.5.17``, ``v0.5.10``, ``v0.5.10-cu13`` or ``0.5.8.post1``; None if absent/unknown."""
    if not text:
        return None
    m = re.search(r"(\d+\.\d+\.\d+(?:\.post\d+)?)", text)
    if not m:
        return None
    try:
        return Version(m.group(1))
    except InvalidVersion:
        return None


def image_for(hardware: Hardware, image: str | None = None, variant: Variant | None = None) -> str:
    """The docker image: a full reference as given, a bare tag under ``lmsysorg/sglang``, else the tag that
    serves the variant (its recipe data) with the hardware's suffix."""
    if image:
        return image if ("/" in image or ":" in image) else f"{IMAGE_REPO}:{image}"
    tag = variant.recipe.image_tag if variant is not None else DEFAULT_IMAGE_TAG
    return f"{IMAGE_REPO}:{tag}{hardware.docker_image_suffix}"


def image_version(image: str) -> Version | None:
    """The SGLang release of an image tag (``v0.5.10-cu13`` → 0.5.10); None for ``dev``/``latest``."""
    tag = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else ""
    return parse_sglang_version(tag)


def recipe_flags(variant: Variant, hardware: Hardware) -> list[list[str]]:
    """The verified matrix's server flags for one cell (without model path, host and port)."""
    flags: list[list[str]] = [["--trust-remote-code"], ["--tp", "1"]]
    if variant.tool_call_parser:
        flags.append(["--tool-call-parser", variant.tool_call_parser])
    if variant.reasoning_parser:
        flags.append(["--reasoning-parser", variant.reasoning_parser])
    if hardware.is_blackwell and variant.recipe.blackwell_attention_backend:
        flags.append(["--attention-backend", variant.recipe.blackwell_attention_backend])
    if variant.recipe.vision_tower:
        flags.append(["--mm-attention-backend", hardware.mm_attention_backend])
    if variant.recipe.mem_fraction_static is not None:
        flags.append(["--mem-fraction-static", _number(variant.recipe.mem_fraction_static)])
    return flags


def translate_args(args: Sequence[str], version: Version | None) -> list[str]:
    """Rename flags for the target SGLang release (unknown version → the newest spelling)."""
    out: list[str] = []
    for arg in args:
        name, eq, value = arg.partition("=")
        for old, new, since in FLAG_RENAMES:
            if version is None or version >= since:
                name = new if name == old else name
            else:
                name = old if name == new else name
        out.append(name + eq + value)
    return out


def uses_serve(version: Version | None) -> bool:
    """True when the release has the ``sglang serve`` entry point (unknown → newest → True)."""
    return version is None or version >= SERVE_SINCE


def is_python_interpreter(command: Sequence[str]) -> bool:
    """True when ``command`` is a bare Python interpreter (then ``-m sglang.launch_server`` is used)."""
    return len(command) == 1 and re.fullmatch(r"python[0-9.]*", Path(command[0]).name) is not None


def build_recipe(variant: Variant, hardware: Hardware, *, framing: str = "python", version: str | None = None,
                 port: int = DEFAULT_PORT, host: str = DEFAULT_HOST, model_path: str | None = None,
                 image: str | None = None, extra_args: Sequence[str] = (), command: Sequence[str] = ("sglang",),
                 api_key: str | None = None, container_name: str | None = None,
                 environ: Mapping[str, str] | None = None) -> Recipe:
    """The launch command for one (hardware, variant) cell.

    :param framing: ``python`` (``sglang serve ...`` in an existing SGLang environment) or ``docker``
        (``docker run --gpus all ... IMAGE sglang serve ...``).
    :param version: the SGLang release the command is for (python framing; docker reads the image tag).
        Decides the entry point and flag spellings; None means the newest.
    :param model_path: a local checkpoint instead of the Hugging Face id (air-gapped runs); docker mounts
        it read-only at the same path.
    :param command: the SGLang executable, or a Python interpreter (``-m sglang.launch_server``), or any
        command that accepts ``serve`` and SGLang's flags (the test fake).
    :param api_key: passed as ``--api-key``; printed as ``<secret>``.
    :param container_name: docker only: adds ``--rm --name NAME`` so teardown can stop the container.
    :param environ: the caller's environment (default ``os.environ``): secrets to redact and optional
        variables to hand to a container.
    """
    if framing not in FRAMINGS:
        raise LfmUsageError(f"unknown framing {framing!r}", remedy="pass --lfm-framing=python or --lfm-framing=docker")
    env_in = os.environ if environ is None else environ
    docker = framing == "docker"
    image_ref = image_for(hardware, image, variant) if docker else ""
    ver = image_version(image_ref) if docker else parse_sglang_version(version)
    model = model_path or variant.hf_path
    lines: list[tuple[int, tuple[str, ...]]] = []
    argv: list[str] = []

    def add(level: int, display: Sequence[str], real: Sequence[str] | None = None) -> None:
        lines.append((level, tuple(display)))
        argv.extend(real if real is not None else display)

    level = 1
    if docker:
        add(0, ["docker", "run", "--gpus", "all"])
        if container_name:
            add(1, ["--rm", "--name", container_name])
        add(1, ["--shm-size", "32g"])
        add(1, ["-p", f"{port}:{port}"])
        add(1, ["-v", f"{HF_CACHE_HOST}:{HF_CACHE_CONTAINER}"],
            ["-v", f"{os.path.expanduser(HF_CACHE_HOST)}:{HF_CACHE_CONTAINER}"])
        if model_path:
            local = str(Path(model_path).expanduser().resolve())
            model = local
            add(1, ["-v", f"{local}:{local}:ro"])
        for name in DOCKER_PASSTHROUGH:
            add(1, ["--env", f"{name}={SECRET}"], ["--env", name])
        for name in OPTIONAL_PASSTHROUGH:
            if env_in.get(name):
                shown = f"{name}={SECRET}" if SECRET_NAME.search(name) else f"{name}={env_in[name]}"
                add(1, ["--env", shown], ["--env", name])
        for name, value in variant.recipe.env.items():
            add(1, ["--env", f"{name}={value}"])
        add(1, ["--ipc=host"])
        add(1, [image_ref])
        entry = ["sglang", "serve"] if uses_serve(ver) else ["python3", "-m", "sglang.launch_server"]
        add(1, entry)
        level = 2
    else:
        cmd = list(command)
        if is_python_interpreter(cmd):
            entry_real = [*cmd, "-m", "sglang.launch_server"]
            entry_shown = ["python", "-m", "sglang.launch_server"] if cmd[0] == "python" else entry_real
        elif uses_serve(ver):
            entry_real = entry_shown = [*cmd, "serve"]
        else:
            entry_real = ["python3", "-m", "sglang.launch_server"]
            entry_shown = entry_real
        add(0, entry_shown, entry_real)
    add(level, ["--model-path", model])
    add(level, ["--host", host])
    add(level, ["--port", str(port)])
    for flag in recipe_flags(variant, hardware):
        add(level, flag)
    extra = translate_args(extra_args, ver)
    i = 0
    while i < len(extra):  # one printed line per flag and its values
        j = i + 1
        while j < len(extra) and not extra[j].startswith("--"):
            j += 1
        add(level, extra[i:j])
        i = j
    if api_key:
        add(level, ["--api-key", SECRET], ["--api-key", api_key])
    env = {} if docker else dict(variant.recipe.env)
    prefix = tuple(f"{k}={v}" for k, v in env.items())
    return Recipe(variant=variant.id, hardware=hardware.id, framing="docker" if docker else "python",
                  argv=tuple(argv), env=env, lines=tuple(lines), env_prefix=prefix,
                  secrets=secret_values(env_in, [api_key]))


def _number(value: float) -> str:
    return f"{value:g}"


def _quote(token: str) -> str:
    """Shell-quote like the seeds do: bare when safe, else double quotes (``--env "HF_TOKEN=<secret>"``)."""
    if _SAFE.match(token):
        return token
    return '"' + re.sub(r'(["\\$`])', r"\\\1", token) + '"'
