"""``digits eval --data FILE.npz``: accuracy and latency of a served model on labelled digits."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from digits import convert
from digits.cli.common import Subparsers, UsageError, load_npz, make_async_client, positive_int, print_json, served_name
from digits.cli.progress import ProgressBar
from digits.errors import InvalidInputError
from digits.evaluation import EvalReport, summarize, top_confusions

__all__ = ["add_parser", "run", "evaluate"]

DEFAULT_CONCURRENCY = 8


def add_parser(subparsers: Subparsers) -> None:
    """Register ``eval``."""
    parser = subparsers.add_parser(
        "eval",
        help="accuracy, per-class accuracy and latency on a labelled .npz",
        description=(
            "Send every x_test digit of a Keras-layout .npz as its own Classify call, with "
            "its y_test label as true_label, and report accuracy (correct/total), per-class "
            "accuracy, the most frequent confusions, client-measured latency percentiles and "
            "which model:version served."
        ),
    )
    parser.add_argument("--data", required=True, metavar="FILE.npz", help="Keras-layout .npz with x_test, y_test")
    parser.add_argument("--model", metavar="NAME[:VERSION]|NAME@LABEL",
                        help="model selector, e.g. lstm, gru:2, rnn@stable (default: the server's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--limit", type=positive_int, metavar="N", help="only the first N digits")
    parser.add_argument("--concurrency", type=positive_int, default=DEFAULT_CONCURRENCY, metavar="C",
                        help=f"calls in flight at once (default {DEFAULT_CONCURRENCY})")
    parser.set_defaults(handler=run)


async def _run_workers(worker: Callable[[], Awaitable[None]], count: int) -> None:
    """Run ``count`` copies of ``worker``; the first failure cancels the rest and is raised."""
    tasks = [asyncio.create_task(worker()) for _ in range(count)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def evaluate(
    args: argparse.Namespace,
    x: np.ndarray,
    y: np.ndarray,
    progress: ProgressBar | None = None,
) -> EvalReport:
    """Classify every x[i] with true_label y[i] over ``args.concurrency`` concurrent calls."""
    n = len(x)
    images = [convert.image_to_proto(image) for image in x]
    predicted = np.full(n, -1, dtype=np.int64)
    latencies = np.zeros(n, dtype=np.float64)
    served = [""] * n
    indices = iter(range(n))
    bar = progress or ProgressBar(n, enabled=False)
    async with make_async_client(args) as client:

        async def worker() -> None:
            for i in indices:  # one shared iterator: each index is taken exactly once
                start = time.perf_counter()
                result = await client.classify(images[i], args.model, true_label=int(y[i]))
                latencies[i] = time.perf_counter() - start
                predicted[i] = result.digit
                served[i] = served_name(result.model, result.version)
                bar.update()

        started = time.perf_counter()
        await _run_workers(worker, min(args.concurrency, n))
        wall = time.perf_counter() - started
    return summarize(y, predicted, latencies, served, wall)


def _fmt(value: float | None) -> str:
    return "  n/a " if value is None else f"{value:.4f}"


def print_report(report: EvalReport, data: str, concurrency: int) -> None:
    """The human-readable report."""
    print(f"{served_name(report.model, report.version)} on {data}: {report.n} digits, "
          f"accuracy {report.accuracy:.6f} ({report.correct}/{report.n})")
    if len(report.served_by) > 1:
        print("served by: " + ", ".join(f"{k} ({v})" for k, v in sorted(report.served_by.items())))
    print("per-class accuracy:")
    for row in (range(0, 5), range(5, 10)):
        print("  " + "   ".join(f"{d}: {_fmt(report.per_class_accuracy[d])} (n={report.per_class_count[d]})"
                                for d in row))
    confusions = top_confusions(report.confusion)
    if confusions:
        print("most frequent confusions (true->predicted): "
              + ", ".join(f"{t}->{p} x{c}" for t, p, c in confusions))
    else:
        print("no confusions")
    lat = report.latency_ms
    print(f"latency ms (client-measured, concurrency {concurrency}): p50 {lat['p50']:.2f}  "
          f"p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  mean {lat['mean']:.2f}  max {lat['max']:.2f}")
    print(f"throughput: {report.throughput_per_second:,.0f} digits/s over {report.seconds:.2f} s")


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the report (or one JSON document)."""
    try:
        convert.model_spec(args.model)
    except InvalidInputError as exc:
        raise UsageError(f"--model: {exc.details}") from None
    x, y = load_npz(args.data, limit=args.limit)
    if y is None:
        raise UsageError(f"{args.data}: no y_test array; eval needs labelled digits")
    if len(x) == 0:
        raise UsageError(f"{args.data}: x_test is empty")
    with ProgressBar(len(x), label="eval") as bar:
        report = asyncio.run(evaluate(args, x, y, bar))
    if args.json:
        print_json({**report.to_dict(), "data": args.data, "concurrency": args.concurrency})
    else:
        print_report(report, args.data, args.concurrency)
    return 0
