"""Load test of `crossfuse serve`: requests/s and latency with request batching on and off.

    python benchmarks/serve_load.py                                  # tiny runs trained here, 200 requests, 16 at once
    python benchmarks/serve_load.py --run finance-sentiment=runs/fin --run security-face-match=runs/face

For each task (a text one, finance-sentiment, and an image one, security-face-match), the service
runs in this process on a free 127.0.0.1 port, once with batching (``max_batch_size`` =
``--batch-size``) and once without (``max_batch_size`` 1). ``--concurrency`` clients send
``--requests`` requests in all (one text, or one pair of face images, each), and stop early when
``--seconds`` have passed: the test is bounded in count and in time. It prints requests/s,
p50/p95/p99 latency, the model calls made, and ``ratio batched / unbatched`` of requests/s per task.
Without ``--run``, tiny runs (tiny-bert, tiny-cnn; one epoch on the demo data) are trained first
with ``crossfuse.testing.smoke_fit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

TASKS = ("finance-sentiment", "security-face-match")
# The face test fixture's settings: 32 px faces, a small synthetic LFW set.
FACE_TINY = ["data.demo.train_identities=8", "data.demo.train_images=4", "data.demo.test_identities=6",
             "data.demo.test_images=3", "data.demo.size=32", "data.demo.folds=2", "data.demo.pairs_per_fold=4",
             "data.validation_fraction=0.25", "data.validation_pair_count=20", "backbone.image_size=32",
             "head.embedding_dim=16", "train.batch_size=16"]
HEADLINES = ["Operating profit rose to EUR 13.1 mn from EUR 8.7 mn", "The company cut 120 jobs at its plant",
             "Net sales were flat compared with the previous year", "Shares jumped 8 % after the results",
             "The group expects a loss for the full year", "Orders increased by a third in the quarter"]


def train_tiny(task: str, folder: Path) -> Path:
    """A one-epoch tiny run of ``task`` in ``folder`` (reused when it is there already)."""
    from crossfuse.testing import smoke_fit

    run_dir = folder / task
    if (run_dir / "report.json").is_file():
        return run_dir
    if task == "security-face-match":
        smoke_fit(task, run_dir, backbone="tiny-cnn", overrides=FACE_TINY, cache=folder / "cache")
    else:
        smoke_fit(task, run_dir, overrides=["train.batch_size=32"], cache=folder / "cache")
    return run_dir


def request_maker(task: str, takes_files: bool, folder: Path) -> Callable[[int], dict[str, Any]]:
    """Request ``i``'s httpx keyword arguments: one headline as JSON, or one pair of images as files."""
    if not takes_files:
        return lambda i: {"json": {"inputs": [f"{HEADLINES[i % len(HEADLINES)]} ({i})"]}}
    from crossfuse.testing import make_images

    make_images(folder, labels=("ann", "bob", "cy"), per_label=2, size=32)
    images = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*/*.png"))]
    return lambda i: {"files": [("files", images[i % len(images)]), ("files", images[(i + 1) % len(images)])]}


async def send(url: str, make: Callable[[int], dict[str, Any]], requests: int, concurrency: int,
               seconds: float) -> dict[str, Any]:
    """``requests`` POSTs to ``url`` from ``concurrency`` clients, none started after ``seconds``."""
    import httpx

    latencies: list[float] = []
    failures, issued = 0, 0
    started = time.perf_counter()
    deadline = started + seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal failures, issued
        while issued < requests and time.perf_counter() < deadline:
            number, issued = issued, issued + 1
            begin = time.perf_counter()
            try:
                answer = await http.post(url, timeout=max(1.0, deadline - begin), **make(number))
                ok = answer.status_code == 200
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - begin)
            else:
                failures += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return {"elapsed_s": time.perf_counter() - started, "latencies": latencies, "failures": failures}


def measure(predictor: Any, task: str, batch_size: int, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """One load test of ``predictor`` served with ``max_batch_size = batch_size``."""
    import numpy as np

    from crossfuse.serve import BackgroundServer, ServedRun, create_app, serve_limits

    limits = serve_limits(predictor.config.serve, {"max_batch_size": batch_size, "max_wait_ms": args.max_wait_ms})
    served = ServedRun("run", predictor, limits)
    make = request_maker(task, served.takes_files, folder)
    with BackgroundServer(create_app({"run": served})) as server:
        url = server.url + "/predict"
        asyncio.run(send(url, make, args.warmup, min(args.concurrency, max(args.warmup, 1)), args.seconds))
        calls_before = served.batcher.calls
        result = asyncio.run(send(url, make, args.requests, args.concurrency, args.seconds))
        calls = served.batcher.calls - calls_before
    done = result["latencies"]
    p50, p95, p99 = (float(np.percentile(done, q) * 1000) if done else float("nan") for q in (50, 95, 99))
    return {"task": task, "mode": "batched" if batch_size > 1 else "unbatched", "max_batch_size": batch_size,
            "requests": len(done) + result["failures"], "ok": len(done), "failures": result["failures"],
            "seconds": round(result["elapsed_s"], 3), "requests_per_s": len(done) / result["elapsed_s"],
            "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "model_calls": calls,
            "requests_per_call": len(done) / calls if calls else float("nan")}


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| task | mode | max_batch_size | requests | ok | req/s | p50 ms | p95 ms | p99 ms | model calls | requests/call |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['task']} | {r['mode']} | {r['max_batch_size']} | {r['requests']} | {r['ok']} | "
              f"{r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | "
              f"{r['model_calls']} | {r['requests_per_call']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="TASK=RUN_DIR",
                        help="a trained run to load instead of a tiny one (repeatable)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), help="tasks to test (default: %(default)s)")
    parser.add_argument("--requests", type=int, default=200, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight at once")
    parser.add_argument("--seconds", type=float, default=60.0, help="no request starts after this (per measurement)")
    parser.add_argument("--batch-size", type=int, default=16, help="max_batch_size with batching on")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="serve.max_wait_ms")
    parser.add_argument("--warmup", type=int, default=8, help="untimed requests first")
    parser.add_argument("--workdir", type=Path, help="where tiny runs are trained (default: a temporary folder)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    given = dict(spec.split("=", 1) for spec in args.run)
    unknown = sorted(set(given) - set(TASKS))
    if unknown or not all(t in TASKS for t in args.tasks):
        sys.exit(f"serve_load.py: tasks are {', '.join(TASKS)}; got {', '.join(unknown or args.tasks)}")
    from crossfuse import api

    with tempfile.TemporaryDirectory(prefix="serve-load-") as temporary:
        folder = args.workdir or Path(temporary)
        rows = []
        for task in args.tasks:
            run_dir = given.get(task) or train_tiny(task, folder)
            predictor = api.load(run_dir, device=args.device)
            pair = [measure(predictor, task, size, args, folder / "inputs" / task) for size in (args.batch_size, 1)]
            rows += pair
            print(f"{task}: {pair[0]['requests_per_s']:.1f} req/s batched, {pair[1]['requests_per_s']:.1f} "
                  f"unbatched", file=sys.stderr)
    print_table(rows)
    for batched, unbatched in zip(rows[::2], rows[1::2]):
        print(f"ratio batched / unbatched = {batched['requests_per_s'] / unbatched['requests_per_s']:.3f} "
              f"({batched['task']}, requests/s; p50 latency {batched['p50_ms'] / unbatched['p50_ms']:.3f})")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
