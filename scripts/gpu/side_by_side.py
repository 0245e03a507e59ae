"""Side by side on one SGLang server: ``python -m pytest_lfm bench`` (A) against
``python -m sglang.bench_serving --backend sglang-oai-chat --dataset-name random-ids`` (B).

    python scripts/gpu/side_by_side.py --server http://127.0.0.1:30000 --out OUTDIR [--concurrency 1 16 64]

Per concurrency: one discarded pass of each (A, B), then ``--repeats`` rounds of A then B (A B A B ...), all
with the same workload (``--input-len`` / ``--output-len`` tokens, ``--num-prompts`` timed requests after
``--warmup`` warm-ups, seed 42, range ratio 1) and SGLang's prefix cache flushed before each run. Prints, per metric, both tools' means over the repeats, the
ratio A/B and each tool's spread ((max - min) / mean over the repeats), and writes OUTDIR/side_by_side.json,
OUTDIR/side_by_side.md and every run's own output (A: bench-cN.json; B: its JSONL line with details).
Needs SGLang (with bench_serving's packages) and pytest_lfm importable by the same python.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

# (label, key in bench_serving's JSONL, function of pytest_lfm's summary)
METRICS: list[tuple[str, str, str]] = [
    ("mean TTFT (ms)", "mean_ttft_ms", "ttft_ms.mean"),
    ("median TTFT (ms)", "median_ttft_ms", "ttft_ms.p50"),
    ("mean TPOT (ms)", "mean_tpot_ms", "tpot_ms.mean"),
    ("median TPOT (ms)", "median_tpot_ms", "tpot_ms.p50"),
    ("mean ITL (ms)", "mean_itl_ms", "itl_ms.mean"),
    ("median ITL (ms)", "median_itl_ms", "itl_ms.p50"),
    ("mean E2E (ms)", "mean_e2e_latency_ms", "e2e_ms.mean"),
    ("output throughput (tok/s)", "output_throughput", "output_throughput"),
    ("duration (s)", "duration", "duration_s"),
]
TARGETED = {"mean TTFT (ms)", "median TTFT (ms)", "mean TPOT (ms)", "median TPOT (ms)", "output throughput (tok/s)"}


def _get(summary: dict[str, Any], path: str) -> float:
    value: Any = summary
    for part in path.split("."):
        value = value[part]
    return float(value)


def flush_cache(server: str) -> None:
    """Empty SGLang's prefix cache, so that no run is served the prompts an earlier run left cached (both
    tools send the same prompts for the same seed)."""
    try:
        urllib.request.urlopen(urllib.request.Request(server + "/flush_cache", method="POST"), timeout=30)
    except OSError as exc:
        print(f"warning: /flush_cache failed ({exc}); runs may see cached prefixes", flush=True)


def run_a(args: argparse.Namespace, c: int, n: int, out: Path) -> dict[str, float]:
    flush_cache(args.server)
    cmd = [sys.executable, "-m", "pytest_lfm", "bench", "--server", args.server, "--concurrency", str(c),
           "--num-prompts", str(n), "--warmup", str(args.warmup), "--input-len", str(args.input_len),
           "--output-len", str(args.output_len), "--seed", "42", "--no-progress", "--out", str(out)]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (out / "stdout.txt").parent.mkdir(parents=True, exist_ok=True)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode not in (0, 1):
        raise SystemExit(f"pytest_lfm bench failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    summary = json.loads((out / f"bench-c{c}.json").read_text(encoding="utf-8"))["summary"]
    figures = {key: _get(summary, path) for _label, key, path in METRICS}
    figures["mean_input_tokens_server"] = float(summary["mean_input_tokens"])
    figures["failed"] = float(summary["failed"])
    return figures


def run_b(args: argparse.Namespace, c: int, n: int, out: Path) -> dict[str, float]:
    flush_cache(args.server)
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "bench_serving.jsonl"
    cmd = [sys.executable, *args.bench_serving.split(), "--backend", "sglang-oai-chat", "--base-url", args.server,
           "--dataset-name", "random-ids", "--random-input-len", str(args.input_len), "--random-output-len",
           str(args.output_len), "--random-range-ratio", "1", "--num-prompts", str(n), "--max-concurrency", str(c),
           "--warmup-requests", str(args.warmup), "--seed", "42", "--disable-tqdm", "--output-file", str(jsonl),
           "--output-details"]
    if args.tokenizer:
        cmd += ["--tokenizer", args.tokenizer]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    (out / "stdout.txt").write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode != 0 or not jsonl.is_file():
        raise SystemExit(f"bench_serving failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    line = json.loads(jsonl.read_text(encoding="utf-8").strip().splitlines()[-1])
    figures = {key: float(line[key]) for _label, key, _path in METRICS}
    figures["completed"] = float(line.get("completed", n))
    return figures


def spread(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return (max(values) - min(values)) / mean if mean else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--num-prompts", type=int, nargs="+", default=None,
                    help="timed requests per concurrency (default: 16 at c=1, else 4 x c)")
    ap.add_argument("--warmup", type=int, default=8)
    ap.add_argument("--input-len", type=int, default=1024)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tokenizer", default=None,
                    help="tokenizer path for both tools' random-ids prompts (default: each asks the server)")
    ap.add_argument("--bench-serving", default="-m sglang.bench_serving",
                    help="how this python runs bench_serving (default '-m sglang.bench_serving'; on a machine "
                         "without SGLang's runtime: scripts/cpu/bench_serving_lite.py)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = args.num_prompts or [16 if c == 1 else 4 * c for c in args.concurrency]
    if len(counts) == 1:
        counts = counts * len(args.concurrency)
    rows: list[dict[str, Any]] = []
    lines = [f"# pytest_lfm bench (A) vs sglang.bench_serving (B): {args.server}, in {args.input_len} / out "
             f"{args.output_len}, warm-up {args.warmup}, {args.repeats} repeats after a discarded pass", "",
             "| c, prompts | metric | bench_serving (B) | pytest_lfm bench (A) | A/B | spread B | spread A |",
             "|---|---|---|---|---|---|---|"]
    for c, n in zip(args.concurrency, counts, strict=True):
        t0 = time.monotonic()
        run_a(args, c, n, out / f"c{c}" / "discard-A")
        run_b(args, c, n, out / f"c{c}" / "discard-B")
        a_runs, b_runs = [], []
        for r in range(args.repeats):
            a_runs.append(run_a(args, c, n, out / f"c{c}" / f"A{r + 1}"))
            b_runs.append(run_b(args, c, n, out / f"c{c}" / f"B{r + 1}"))
        print(f"== c={c}, {n} prompts: {time.monotonic() - t0:.0f} s; server-counted prompt tokens (A) "
              f"{statistics.fmean(x['mean_input_tokens_server'] for x in a_runs):.1f}", flush=True)
        for label, key, _path in METRICS:
            a = [x[key] for x in a_runs]
            b = [x[key] for x in b_runs]
            ratio = statistics.fmean(a) / statistics.fmean(b) if statistics.fmean(b) else float("nan")
            row = {"concurrency": c, "prompts": n, "metric": label, "bench_serving": b, "pytest_lfm": a,
                   "ratio": ratio, "spread_bench_serving": spread(b), "spread_pytest_lfm": spread(a),
                   "targeted": label in TARGETED, "within_5pct": abs(ratio - 1) <= 0.05}
            rows.append(row)
            flag = "" if not row["targeted"] else ("  ok" if row["within_5pct"] else "  OUTSIDE 5 %")
            text = (f"{label:<27} B {statistics.fmean(b):10.3f}  A {statistics.fmean(a):10.3f}  A/B {ratio:6.3f}  "
                    f"spread B {spread(b):6.1%}  A {spread(a):6.1%}{flag}")
            print(f"  c={c:<3} {text}", flush=True)
            lines.append(f"| {c}, {n} | {label} | {statistics.fmean(b):.3f} | {statistics.fmean(a):.3f} | "
                         f"{ratio:.3f}{'' if not row['targeted'] or row['within_5pct'] else ' **'} | "
                         f"{spread(b):.1%} | {spread(a):.1%} |")
    (out / "side_by_side.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    (out / "side_by_side.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    outside = [r for r in rows if r["targeted"] and not r["within_5pct"]]
    print(f"{len(outside)} targeted figure(s) outside 5 %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
