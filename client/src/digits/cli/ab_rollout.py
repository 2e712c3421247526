"""``digits ab rollout``: a progressive rollout of a candidate arm that decides and acts on its own.

    digits ab rollout NAME [--candidate ARM] [--steps 5,10,25,50] [--step-labelled 200]
                           [--margin 0] [--horizon 5000] [--interval 2] [--max-seconds S]
                           [--max-estimated-drop 0.05] [--prometheus URL [--settle 10]]

The experiment's first arm is the stable one (best as ``MODEL@stable``: promoting a version of the
same model moves the label). Without --prometheus every look is --target's GetExperimentReport, and
a --target that turns out to reach several servers (a balancer in front of a fleet) is refused; with
--prometheus every look is the fleet's exact totals since the experiment was created. Exit status:
0 promoted, 3 rolled back, 4 no difference at the horizon, 5 stopped by --max-seconds without a
decision, 2 refused (a fleet without --prometheus, bad arguments).
"""

from __future__ import annotations

import argparse
from typing import Any

from digits.cli.common import UsageError, make_client, positive_float, positive_int
from digits.experiments.counter_history import PrometheusError
from digits.experiments.rollout import NO_DIFFERENCE, PROMOTE, ROLLBACK, FleetError, Policy, Rollout

EXIT = {PROMOTE: 0, ROLLBACK: 3, NO_DIFFERENCE: 4}


def _weights(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated percentages, e.g. 5,10,25,50") from None
    if not weights or any(not 0 < w < 100 for w in weights) or weights != sorted(weights):
        raise argparse.ArgumentTypeError(f"{text!r}: increasing percentages between 0 and 100")
    return weights


def add_parser(commands: Any) -> None:
    """Register ``digits ab rollout``."""
    rollout = commands.add_parser(
        "rollout", help="step a candidate's weight up; promote or roll back on always-valid statistics",
        description=__doc__.split("\n\n")[0])
    rollout.add_argument("name", help="the experiment (its first arm is the stable one)")
    rollout.add_argument("--candidate", default=None, metavar="ARM",
                         help="the arm to roll out (default: the second arm)")
    rollout.add_argument("--steps", type=_weights, default=[5.0, 10.0, 25.0, 50.0], metavar="W,W,...",
                         help="the candidate's weights in percent, in order (default 5,10,25,50)")
    rollout.add_argument("--step-labelled", type=positive_int, default=200, metavar="N",
                         help="labelled candidate requests at a weight before the next step (default 200)")
    rollout.add_argument("--margin", type=float, default=0.0, metavar="POINTS",
                         help="non-inferiority margin in accuracy points (e.g. 1): promote when the candidate is "
                              "surely not worse by more; default 0: it must be better")
    rollout.add_argument("--horizon", type=positive_int, default=5000, metavar="N",
                         help="labelled candidate requests after which it ends 'no difference' (default 5000)")
    rollout.add_argument("--interval", type=positive_float, default=2.0, metavar="S", help="seconds between looks")
    rollout.add_argument("--max-seconds", type=positive_float, default=None, metavar="S",
                         help="give up (exit 5) after this long without a decision")
    rollout.add_argument("--max-estimated-drop", type=float, default=0.0, metavar="SHARE",
                         help="label-free guardrail (off by default): roll back when the candidate's estimated "
                              "accuracy (CBPE, no labels needed) is surely more than SHARE below stable's, e.g. "
                              "0.05 for 5 points (always-valid, at the guardrails' level)")
    rollout.add_argument("--prometheus", metavar="URL",
                         help="decide on the whole fleet's traffic: every replica's counters in this Prometheus, "
                              "exact since the experiment was created (needed behind a balancer; needs scipy)")
    rollout.add_argument("--settle", type=positive_float, default=10.0, metavar="S",
                         help="with --prometheus: seconds after a weight change before the sample-ratio test "
                              "counts again (config polls and scrapes catch up; default 10)")
    rollout.set_defaults(handler=_rollout)


def _rollout(args: argparse.Namespace) -> int:
    if args.margin < 0:
        raise UsageError("--margin must be >= 0")
    if not 0 <= args.max_estimated_drop < 1:
        raise UsageError(f"--max-estimated-drop: a share of accuracy in [0, 1) (0.05 = 5 points), "
                         f"got {args.max_estimated_drop:g}")
    policy = Policy(steps=args.steps, step_labelled=args.step_labelled, margin=args.margin / 100,
                    horizon=args.horizon, max_estimated_drop=args.max_estimated_drop)
    with make_client(args) as client:
        candidate = args.candidate
        if candidate is None:
            experiment = next((e for e in client.list_experiments() if e.name == args.name), None)
            if experiment is None or len(experiment.arms) < 2:
                raise UsageError(f"no experiment {args.name!r} with two arms on the server (digits ab list)")
            candidate = experiment.arms[1].name
        looks = None
        if args.prometheus:
            from digits.experiments.fleet_rollout import FleetLooks

            looks = FleetLooks(client, args.name, args.prometheus, settle=args.settle)
        try:
            decision = Rollout(client, args.name, candidate, policy, args.interval, args.max_seconds or 0.0,
                               log=lambda line: print(line, flush=True), looks=looks).run()
        except (ValueError, FleetError, PrometheusError) as exc:
            raise UsageError(str(exc)) from None
    return EXIT.get(decision.decision, 5)
