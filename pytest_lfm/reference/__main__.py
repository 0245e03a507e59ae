"""``python -m pytest_lfm.reference --variant ID [--host H] [--port P] [--api-key K] [--fault NAME]
[--parsers sglang --sglang-dir DIR] [--stream-interval N] [--sampling-defaults JSON]``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from pytest_lfm.errors import LfmError
from pytest_lfm.reference.faults import FAULTS
from pytest_lfm.reference.server import ReferenceServer
from pytest_lfm.variants import variant_ids


def main(argv: list[str] | None = None) -> int:
    """Run one reference server in the foreground."""
    ap = argparse.ArgumentParser(prog="python -m pytest_lfm.reference",
                                 description="SGLang-compatible LFM2.5 reference server (a test double).")
    ap.add_argument("--variant", help=f"variant id: {', '.join(variant_ids())}")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=30000)
    ap.add_argument("--api-key", default=None, help="require this Bearer token, as SGLang's --api-key does")
    ap.add_argument("--api-key-env", default=None, metavar="VAR",
                    help="read the API key from this environment variable (keeps it out of the process list)")
    ap.add_argument("--fault", action="append", default=[], metavar="NAME", help="enable a fault mode (repeatable)")
    ap.add_argument("--sglang-version", default="0.5.23", help="SGLang release whose behaviour to emulate")
    ap.add_argument("--context-length", type=int, default=None)
    ap.add_argument("--hardware", default=None, help="GPU to report in /server_info's resolved backends (h100, b200, ...)")
    ap.add_argument("--parsers", choices=("project", "sglang"), default="project",
                    help="tool-call/reasoning parsers: the project's own (default), or a real SGLang release's "
                         "parser code from --sglang-dir (then /server_info reports that release's version)")
    ap.add_argument("--sglang-dir", default=os.environ.get("LFM_SGLANG_PARSERS_DIR") or None, metavar="DIR",
                    help="sglang tree installed by scripts/install_sglang_parsers.sh (env LFM_SGLANG_PARSERS_DIR)")
    ap.add_argument("--announce", action="store_true",
                    help="print 'LFM_REFERENCE_READY port=N' once listening (used with --port 0)")
    ap.add_argument("--watch-parent", action="store_true", help="exit when the parent process exits")
    ap.add_argument("--list-faults", action="store_true", help="list the fault modes and exit")
    ap.add_argument("--ttft-delay-ms", type=float, default=0.0, metavar="MS",
                    help="streaming: hold the first token chunk MS milliseconds (an injected time to first token)")
    ap.add_argument("--tpot-delay-ms", type=float, default=0.0, metavar="MS",
                    help="streaming: space later token chunks MS milliseconds apart (an injected time per token)")
    ap.add_argument("--stream-interval", type=int, default=1, metavar="N",
                    help="streaming: tokens per chunk, as SGLang's --stream-interval (default 1; reported in "
                         "/server_info as stream_interval)")
    ap.add_argument("--sampling-defaults", type=_sampling_defaults, default=None, metavar="JSON",
                    help="sampling defaults the server declares, as a checkpoint's generation_config.json under "
                         "SGLang's --sampling-defaults model (e.g. '{\"temperature\": 0.1, \"top_k\": 50}'): chat "
                         "requests that omit a field get it; reported in /model_info preferred_sampling_params")
    args = ap.parse_args(argv)
    if args.list_faults:
        try:
            for name, what in FAULTS.items():
                print(f"{name:32s} {what}")
            sys.stdout.flush()
        except BrokenPipeError:  # `--list-faults | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if not args.variant:
        ap.error("--variant is required")
    if args.api_key_env:
        args.api_key = os.environ.get(args.api_key_env) or None
    try:
        server = ReferenceServer(args.variant, host=args.host, port=args.port, faults=args.fault,
                                 api_key=args.api_key, version=args.sglang_version,
                                 context_length=args.context_length, parsers=args.parsers,
                                 sglang_dir=args.sglang_dir, hardware=args.hardware,
                                 ttft_delay_ms=args.ttft_delay_ms, tpot_delay_ms=args.tpot_delay_ms,
                                 stream_interval=args.stream_interval, sampling_defaults=args.sampling_defaults)
    except (LfmError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.announce:
        print(f"reference server for {server.state.variant.id} on http://{args.host}:{args.port}", flush=True)
    server.serve_forever(announce=args.announce, watch_parent=args.watch_parent)
    return 0


def _sampling_defaults(text: str) -> dict[str, float]:
    """``--sampling-defaults`` JSON: an object of temperature/top_p/top_k/min_p/repetition_penalty numbers."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from exc
    allowed = ("temperature", "top_p", "top_k", "min_p", "repetition_penalty")
    if not isinstance(data, dict) or any(k not in allowed or not isinstance(v, (int, float)) for k, v in data.items()):
        raise argparse.ArgumentTypeError(f"expected an object of numbers with keys among {', '.join(allowed)}, got {text}")
    return {str(k): v for k, v in data.items()}


if __name__ == "__main__":
    sys.exit(main())
