"""``digits bench``: drive a server with a closed or open loop and report rates and latency."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import numpy as np

from digits.cli.common import UsageError, connection, load_npz, positive_float, positive_int, print_json
from digits.cli.progress import ProgressBar
from digits.convert import parse_model
from digits.loadtest import driver as bench
from digits.loadtest.config import PROTOCOLS
from digits.loadtest.stats import Recorder, render_table, summary

__all__ = ["add_parser", "run", "config_from_args"]

SYNTHETIC_IMAGES = 256


def add_parser(subparsers: Any) -> None:
    """Register ``bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="load-test a server: requests/s, images/s, latency percentiles, errors",
        description=(
            "Closed loop (--concurrency callers, each sending its next request when the last "
            "answered) or open loop (--rate requests/s, whatever the answers do, so queueing "
            "shows in the latency). Requests are built once and sent as raw bytes; requests "
            "finishing in the --warmup seconds are not counted."
        ),
    )
    parser.add_argument("--mode", choices=bench.MODES, default="unary",
                        help="unary Classify, ClassifyBatch of --batch-size images, or ClassifyStream")
    parser.add_argument("--batch-size", type=positive_int, default=1, metavar="K",
                        help="images per ClassifyBatch request (--mode batch)")
    parser.add_argument("--concurrency", "-c", type=positive_int, default=1, metavar="N",
                        help="closed loop: callers (streams in --mode stream); default 1")
    parser.add_argument("--rate", type=positive_float, metavar="R",
                        help="open loop: send R requests/s (per stream in --mode stream)")
    parser.add_argument("--window", type=positive_int, default=32, metavar="W",
                        help="--mode stream: most requests in flight per stream (default 32)")
    parser.add_argument("--duration", "-d", type=positive_float, default=10.0, metavar="S",
                        help="measured seconds after the warm-up (default 10)")
    parser.add_argument("--count", "-n", type=positive_int, metavar="N",
                        help="measure N requests instead of a duration")
    parser.add_argument("--warmup", type=float, default=1.0, metavar="S", help="seconds not measured (default 1)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME[:VERSION]|NAME@LABEL", help="model selector (default: server's)")
    which.add_argument("--experiment", metavar="NAME", help="route through this A/B experiment")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="digits.v1",
                        help="digits.v1 (default) or v2: Open Inference Protocol ModelInfer, raw tensors "
                             "(needs --model and the digits-server package for its request builder); v2-rest: "
                             "its REST form with binary tensors, v2-rest-json: all JSON; --target the REST port")
    parser.add_argument("--data", metavar="FILE.npz", help="send x_test digits of this .npz (default: random pixels)")
    parser.add_argument("--image-file", action="append", default=[], metavar="FILE",
                        help="send this image file (PNG, JPEG...) as Image.encoded instead of raw pixels; repeat to "
                             "cycle through several (the server decodes and preprocesses each)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> bench.BenchConfig:
    """A BenchConfig from parsed arguments (connection flags resolved against the environment)."""
    conn = connection(args)
    name, version, label = parse_model(args.model) if args.model else ("", None, "")
    if args.warmup < 0:
        raise UsageError(f"--warmup: must be >= 0, got {args.warmup}")
    if args.mode != "batch" and args.batch_size != 1:
        raise UsageError("--batch-size needs --mode batch")
    try:
        return bench.BenchConfig(
            target=conn.target, mode=args.mode, batch_size=args.batch_size, concurrency=args.concurrency,
            rate=args.rate, duration=None if args.count else args.duration, count=args.count,
            warmup=args.warmup, window=args.window, model=name, version=version, label=label,
            experiment=args.experiment or "", timeout=conn.timeout, token=conn.token,
            tls_ca=conn.tls_ca, tls_cert=conn.tls_cert, tls_key=conn.tls_key, protocol=args.protocol,
            lb_policy=conn.lb_policy,
            encoded=tuple(_read(path) for path in args.image_file),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--image-file: cannot read {path}: {exc.strerror}") from None


def _images(path: str | None) -> np.ndarray:
    if path:
        return load_npz(path)[0]
    return np.random.default_rng(0).integers(0, 256, (SYNTHETIC_IMAGES, 28, 28), dtype=np.uint8)


def run(args: argparse.Namespace) -> int:
    """Handler of ``digits bench``; exit 1 when every measured request failed."""
    config = config_from_args(args)
    images = _images(args.data)
    recorder = Recorder(config.images_per_request)
    total = config.count or 0
    bar = ProgressBar(total or int(config.duration or 0), label="bench", enabled=args.progress)

    def tick() -> None:
        done = recorder.count if total else int(recorder.elapsed_so_far())
        bar.update(done - bar.count)

    try:
        asyncio.run(bench.run(config, images, recorder, tick if bar.enabled else None))
    except ValueError as exc:  # e.g. --protocol v2 without the server package
        raise UsageError(str(exc)) from None
    except (asyncio.TimeoutError, TimeoutError):
        raise UsageError(f"no server answering at {config.target} within {config.timeout:g} s") from None
    finally:
        bar.close()
    scenario = {
        "target": config.target, "mode": config.mode, "method": config.method,
        "batch_size": config.images_per_request, "concurrency": config.concurrency, "rate": config.rate,
        "window": config.window if config.mode == "stream" else None,
        "model": args.model or "", "experiment": config.experiment, "protocol": config.protocol,
        "warmup_seconds": config.warmup, "description": bench.describe(config),
    }
    result = summary(recorder, scenario)
    if args.json:
        print_json(result)
    else:
        print(render_table(result, f"digits bench: {scenario['description']} -> {config.target}"))
    if result["requests"] and not result["ok"]:
        print("error: every measured request failed", file=sys.stderr)
        return 1
    return 0
