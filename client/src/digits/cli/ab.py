"""``digits ab``: define A/B experiments, drive labelled traffic through one, read the verdict.

    digits ab create NAME --arm lstm=50 --arm gru=50 [--shadow 10]
    digits ab update NAME [--arm lstm=80] [--shadow P] [--pause | --resume]
    digits ab list | delete NAME
    digits ab report NAME [--json] [--prometheus URL [--since DURATION]]
    digits ab run --data FILE.npz --experiment NAME [--rate 200] [--duration 60 | --count N] [--keys 100]
    digits ab rollout NAME [--candidate ARM] [--steps 5,10,25,50] [--margin 0] [--horizon 5000] [--max-estimated-drop 0.05]

An ``--arm`` is ``[ARM=]MODEL[:VERSION|@LABEL][=WEIGHT]``; the arm name defaults to the model
text (``lstm:2``), the weight to 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from digits.cli import ab_output, ab_rollout
from digits.cli.common import (
    UsageError,
    load_npz,
    make_async_client,
    make_client,
    positive_float,
    positive_int,
    print_json,
)
from digits.cli.progress import ProgressBar
from digits.experiments.replay import Replay, replay
from digits.v1 import digits_pb2

__all__ = ["add_parser", "parse_arm"]


def add_parser(subparsers: Any) -> None:
    """Register ``digits ab`` and its subcommands."""
    ab = subparsers.add_parser("ab", help="A/B experiments: create, run traffic, report",
                               description=__doc__.split("\n\n")[0])
    commands = ab.add_subparsers(dest="ab_command", metavar="SUBCOMMAND", required=True)

    create = commands.add_parser("create", help="start an experiment")
    create.add_argument("name")
    create.add_argument("--arm", action="append", required=True, metavar="[ARM=]MODEL[=WEIGHT]",
                        help="an arm (repeat, at least two): lstm=50, gru:1=50, canary=lstm@canary=10")
    create.add_argument("--shadow", type=float, default=0.0, metavar="PERCENT",
                        help="percentage of requests also mirrored to every other arm (default 0)")
    create.add_argument("--paused", action="store_true", help="create it paused (all traffic to the first arm)")
    create.set_defaults(handler=_create)

    update = commands.add_parser("update", help="change weights, shadow percentage, pause/resume")
    update.add_argument("name")
    update.add_argument("--arm", action="append", default=[], metavar="ARM=WEIGHT", help="new weight of an arm")
    update.add_argument("--shadow", type=float, default=None, metavar="PERCENT")
    pause = update.add_mutually_exclusive_group()
    pause.add_argument("--pause", dest="paused", action="store_true", default=None)
    pause.add_argument("--resume", dest="paused", action="store_false")
    update.set_defaults(handler=_update)

    commands.add_parser("list", help="the experiments the server runs").set_defaults(handler=_list)
    delete = commands.add_parser("delete", help="stop an experiment and drop its counts")
    delete.add_argument("name")
    delete.set_defaults(handler=_delete)

    report = commands.add_parser("report", help="the statistical comparison of an experiment's arms")
    report.add_argument("name")
    report.add_argument("--json", action="store_true", help="print the ExperimentReport as JSON")
    report.add_argument("--fixed-horizon", action="store_true",
                        help="verdicts from the fixed-horizon tests (valid for one look at a planned size only)")
    report.add_argument("--prometheus", metavar="URL",
                        help="the whole fleet's report: counts summed over every replica Prometheus scrapes, "
                             "fixed-horizon and always-valid (arms from --target; needs scipy: "
                             "pip install 'digits-client[stats]')")
    report.add_argument("--since", metavar="DURATION",
                        help="with --prometheus: counts of the last DURATION (PromQL, e.g. 1h) by increase(); "
                             "default: everything the replicas counted (a sliding window is a new sample at "
                             "each look: for always-valid figures across looks, leave it out)")
    report.set_defaults(handler=_report)

    run = commands.add_parser("run", help="replay labelled digits as live traffic, then report",
                              description="Open-loop replay of a labelled .npz (x_test, y_test) through an "
                                          "experiment; prints the report and writes ab-report.md and ab-report.png.")
    run.add_argument("--data", required=True, metavar="FILE.npz")
    run.add_argument("--experiment", required=True, metavar="NAME")
    run.add_argument("--rate", type=positive_float, default=200.0, help="requests per second (default 200)")
    amount = run.add_mutually_exclusive_group()
    amount.add_argument("--duration", type=positive_float, default=None, metavar="S",
                        help="seconds of traffic (default 60)")
    amount.add_argument("--count", type=positive_int, default=None, metavar="N", help="number of requests")
    run.add_argument("--keys", type=int, default=100, metavar="N",
                     help="simulated users, one routing key each (0: no keys, random by weight; default 100)")
    run.add_argument("--seed", type=int, default=0, help="order of the digits and of the users (default 0)")
    run.add_argument("--out-dir", type=Path, default=Path("."), help="where ab-report.md/.png go (default .)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)
    ab_rollout.add_parser(commands)


def parse_arm(text: str) -> tuple[str, str, float]:
    """``[ARM=]MODEL[:VERSION|@LABEL][=WEIGHT]`` as (arm name, model text, weight)."""
    parts = text.split("=")
    weight = 1.0
    if len(parts) > 1:
        try:
            weight = float(parts[-1])
            parts = parts[:-1]
        except ValueError:
            pass
    if len(parts) == 1 and parts[0]:
        return parts[0], parts[0], weight
    if len(parts) == 2 and all(parts):
        return parts[0], parts[1], weight
    raise UsageError(f"--arm {text!r}: expected [ARM=]MODEL[:VERSION|@LABEL][=WEIGHT], e.g. lstm=50")


def _create(args: argparse.Namespace) -> int:
    arms = [parse_arm(text) for text in args.arm]
    with make_client(args) as client:
        created = client.create_experiment(args.name, arms, shadow_percent=args.shadow, paused=args.paused)
    print(_describe(created))
    return 0


def _update(args: argparse.Namespace) -> int:
    arms = []
    for text in args.arm:
        name, model, weight = parse_arm(text)
        if name != model:
            raise UsageError(f"--arm {text!r}: an update only changes weights: ARM=WEIGHT")
        arms.append(digits_pb2.Arm(name=name, weight=weight))
    with make_client(args) as client:  # only what is given changes: no read-modify-write race
        print(_describe(client.update_experiment(args.name, arms, shadow_percent=args.shadow, paused=args.paused)))
    return 0


def _list(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        experiments = client.list_experiments()
    for experiment in experiments:
        print(_describe(experiment))
    if not experiments:
        print("no experiments")
    return 0


def _delete(args: argparse.Namespace) -> int:
    with make_client(args) as client:
        client.delete_experiment(args.name)
    print(f"deleted {args.name}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.since and not args.prometheus:
        raise UsageError("--since needs --prometheus")
    with make_client(args) as client:
        if args.prometheus:
            report = _fleet_report(args, client)
        else:
            report = client.experiment_report(args.name, verdict_basis="fixed-horizon" if args.fixed_horizon else "")
    if args.json:
        print_json({**json_format.MessageToDict(report, preserving_proto_field_name=True),
                    **ab_output.figures(report)})
    else:
        print(ab_output.render_text(report))
    return 0


def _fleet_report(args: argparse.Namespace, client: Any) -> Any:
    """The report from Prometheus' sums over the fleet; the arms come from the server's ListExperiments."""
    from digits.experiments.fleet_report import PrometheusError, fleet_report

    found = {e.name: e for e in client.list_experiments()}
    if args.name not in found:
        raise UsageError(f"name: no experiment '{args.name}' at {client.target} "
                         f"(experiments: {', '.join(sorted(found)) or 'none'})")
    try:
        basis = "fixed-horizon" if args.fixed_horizon else "always-valid"
        return fleet_report(args.prometheus, found[args.name], args.since, basis)
    except ModuleNotFoundError as exc:
        raise UsageError(f"--prometheus needs {exc.name}: pip install 'digits-client[stats]'") from None
    except (PrometheusError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    images, labels = load_npz(args.data)
    if labels is None:
        raise UsageError(f"{args.data}: no y_test labels; an A/B run needs the true digits")
    if args.keys < 0:
        raise UsageError("--keys must be >= 0")
    count = args.count or max(int(round(args.rate * (args.duration or 60.0))), 1)
    run, report = asyncio.run(_replay(args, images, labels, count))
    print(ab_output.render_text(report, run))
    args.out_dir.mkdir(parents=True, exist_ok=True)
    png = _try_png(report, run, args.out_dir / "ab-report.png")
    markdown = args.out_dir / "ab-report.md"
    markdown.write_text(ab_output.render_markdown(report, run, png.name if png else None))
    print(f"\nwrote {markdown}" + (f" and {png}" if png else ""))
    return 0


async def _replay(args: argparse.Namespace, images: Any, labels: Any, count: int) -> tuple[Replay, Any]:
    async with make_async_client(args) as client:
        await client.experiment_report(args.experiment)  # fail fast on an unknown experiment
        with ProgressBar(count, f"ab {args.experiment}", enabled=False if args.no_progress else None) as bar:
            run = await replay(client, images, labels, args.experiment, rate=args.rate, count=count,
                               keys=args.keys, seed=args.seed, on_answer=lambda _: bar.update())
        return run, await client.experiment_report(args.experiment)


def _try_png(report: Any, run: Replay, path: Path) -> Path | None:
    try:
        return ab_output.draw_png(report, run.samples, path)
    except ImportError:
        print("note: no ab-report.png: matplotlib is missing (pip install 'digits-client[report]')", file=sys.stderr)
        return None


def _describe(experiment: digits_pb2.Experiment) -> str:
    arms = ", ".join(f"{a.name}={a.weight:g}" for a in experiment.arms)
    state = "paused" if experiment.paused else "running"
    return f"{experiment.name}: {arms}; shadow {experiment.shadow_percent:g}%; {state}"
