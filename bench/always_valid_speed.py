"""Time per look of our always-valid mixtures (digits.experiments.sequential) against confseq's (Howard
et al.'s, the oracle of tests/client/test_always_valid_oracle.py): could confseq replace our copy?

    python bench/always_valid_speed.py [--repeat 20000] [--rounds 3] [--oracle .venv-oracle]

One look is one scalar call, as the server's report and the controller make them: the normal-mixture
log ratio (the accuracy p-value), its confidence-sequence radius, and the paired beta-binomial log
mixture (the paired p-value). confseq's functions get ready-made numpy arrays of one (a caller would
also pay to build them). Ours run in this process, confseq's in .venv-oracle (make setup-oracle);
the two alternate for --rounds rounds and each figure is the fastest round (the machine is shared).
Prints a markdown table for docs/ab-decisions.md and the raw figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "client/src"))
sys.path.insert(0, str(REPO))

from digits.experiments import sequential as seq
from tests.oracle.confseq_mapping import normal_points, paired_points, run_confseq

#: One look: 3 accuracy points at V = 1e-4 (about 1,000 labelled requests per arm), 30 vs 12 discordant pairs.
ESTIMATE, VARIANCE, ONLY_A, ONLY_B = 0.03, 1e-4, 30, 12
OURS: dict[tuple[str, str], Callable[[], Any]] = {
    ("normal", "log_mixture"): lambda: seq.log_mixture_ratio(ESTIMATE, VARIANCE, seq.TAU),
    ("normal", "bound"): lambda: seq.mixture_radius(VARIANCE, seq.TAU, seq.ALPHA),
    ("beta_binomial", "log_mixture"): lambda: seq.paired_p_value(ONLY_A, ONLY_B, seq.PAIRED_PRIOR),
}


def time_ours(repeat: int) -> dict[tuple[str, str], float]:
    """Seconds per call of each of our functions."""
    seconds = {}
    for key, function in OURS.items():
        start = time.perf_counter()
        for _ in range(repeat):
            function()
        seconds[key] = (time.perf_counter() - start) / repeat
    return seconds


def time_confseq(python: Path, repeat: int) -> dict[tuple[str, str], float]:
    """Seconds per call of confseq's functions at the same point, timed inside .venv-oracle."""
    answer = run_confseq(python, repeat,
                         normal=normal_points(VARIANCE, ESTIMATE, seq.TAU, seq.ALPHA, 0.05),
                         beta_binomial=paired_points(ONLY_A, ONLY_B, seq.PAIRED_PRIOR, seq.ALPHA, 0.05))
    return {(family, name): seconds for family, figures in answer.items()
            for name, seconds in figures["seconds_per_call"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--oracle", type=Path, default=REPO / ".venv-oracle")
    args = parser.parse_args()
    python = args.oracle / "bin/python"
    if not (args.oracle / ".installed").exists():
        sys.exit(f"{args.oracle} is not set up: make setup-oracle")
    ours: dict[tuple[str, str], float] = {}
    theirs: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):
        for key, seconds in time_ours(args.repeat).items():
            ours[key] = min(ours.get(key, float("inf")), seconds)
        for key, seconds in time_confseq(python, args.repeat).items():
            theirs[key] = min(theirs.get(key, float("inf")), seconds)
    print("| function (one look) | ours µs | confseq µs | confseq / ours |")
    print("|---|---:|---:|---:|")
    for key in sorted(theirs):
        mine = ours.get(key)
        ratio = f"{theirs[key] / mine:.2f}" if mine else "—"
        print(f"| {key[0]} {key[1]} | {mine * 1e6:.1f} | {theirs[key] * 1e6:.1f} | {ratio} |" if mine
              else f"| {key[0]} {key[1]} | (not needed) | {theirs[key] * 1e6:.1f} | {ratio} |")
    print(json.dumps({"ours": {"/".join(k): v for k, v in ours.items()},
                      "confseq": {"/".join(k): v for k, v in theirs.items()},
                      "repeat": args.repeat, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
