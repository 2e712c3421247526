"""False alarms of the drift detectors on clean traffic: a fixed-seed simulation (issue 22).

    python bench/monitoring_false_alarms.py [--streams 20] [--days 1] [--reference 1500] [--seed 0]

Clean traffic is drawn from the truth the reference was sampled from (each stream draws its own
reference of --reference predictions, as the trainer's is a sample). Four parts, printed as
markdown tables for docs/monitoring.md:
1. the production threshold c = 1e8 over a day at 100 predictions/s (8.64 M per stream): alarms
   seen against the guarantee's bound (expected alarms <= n / c per detector);
2. small thresholds, where alarms happen: mean alarms per stream against n / c, with an exactly
   known reference (the tightest case) and a sampled one;
3. the same detector with the reference's point estimate in place of its upper bounds (no
   guarantee): why the bounds;
4. power: predictions until the first alarm for a few shifts.
Everything is vectorised over streams (digits.monitoring.simulation); one core, ~2-4 minutes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client/src"))

from digits.monitoring.detectors import THRESHOLD
from digits.monitoring.simulation import simulate_clean

DAY = 8_640_000  # 100 predictions/s for 24 h
SIGNALS = 9
#: Two shapes of signal: the predicted digit (10 near-equal bins) and a confidence-like one (12
#: bins, most mass in the top bins, a few nearly empty ones).
TRUTHS = {
    "predicted_class (10 bins)": np.array([0.098, 0.114, 0.100, 0.101, 0.098, 0.090, 0.097, 0.104, 0.097, 0.101]),
    "confidence-like (12 bins)": np.array([0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.012, 0.02, 0.03, 0.08, 0.3, 0.527]),
}


def production(streams: int, days: float, reference: int, seed: int) -> None:
    length = int(DAY * days)
    print(f"\n### 1. Production threshold c = {THRESHOLD:.0e}, {days:g} day(s) = {length:,} predictions per stream\n")
    print("| signal shape | streams | alarms seen | bound (expected alarms, all streams) | seconds |")
    print("|---|---|---|---|---|")
    for offset, (name, truth) in enumerate(TRUTHS.items()):
        started = time.perf_counter()
        run = simulate_clean(truth, reference, streams, length, seed=seed + offset, batch=4096)
        print(f"| {name} | {streams} | {int(run.alarms.sum())} | {streams * run.bound:.2f} | "
              f"{time.perf_counter() - started:.0f} |", flush=True)
    print(f"\nPer version: {SIGNALS} detectors x {DAY:,} / {THRESHOLD:.0e} = {SIGNALS * DAY / THRESHOLD:.2f} "
          "expected false alarms per day at most (target: <= 1).")


def small_thresholds(reference: int, seed: int) -> None:
    length, streams = 100_000, 200
    print(f"\n### 2. Small thresholds: mean alarms per stream of {length:,} clean predictions ({streams} streams)\n")
    print("| threshold c | bound n / c | exact reference | sampled reference |")
    print("|---|---|---|---|")
    truth = TRUTHS["predicted_class (10 bins)"]
    for c in (2.0, 5.0, 20.0, 100.0, 1000.0):
        exact = simulate_clean(truth, 10**9, streams, length, threshold=c, seed=seed)
        sampled = simulate_clean(truth, reference, streams, length, threshold=c, seed=seed + 1)
        print(f"| {c:g} | {exact.bound:g} | {exact.per_stream:.3g} | {sampled.per_stream:.3g} |", flush=True)


def point_estimate(reference: int, seed: int) -> None:
    length, streams = 200_000, 50
    print(f"\n### 3. Without the bounds: the reference's point estimate as the null, c = {THRESHOLD:.0e}\n")
    print("| reference size | streams with a false alarm in 200,000 predictions | mean alarms per stream | bound |")
    print("|---|---|---|---|")
    truth = TRUTHS["predicted_class (10 bins)"]
    for size in (reference, 10 * reference):
        run = simulate_clean(truth, size, streams, length, seed=seed, bounded=False)
        print(f"| {size:,} | {(run.alarms > 0).mean():.0%} | {run.per_stream:.2f} | {run.bound:.4f} |", flush=True)


def power(reference: int, seed: int) -> None:
    streams, length = 50, 5_000
    truth = TRUTHS["predicted_class (10 bins)"]
    shifts = {
        "3 of 10 classes": np.where(np.isin(np.arange(10), (0, 1, 7)), 1.0, 0.0),
        "one class doubled": truth * np.where(np.arange(10) == 3, 2.0, 1.0),
        "one class x1.5": truth * np.where(np.arange(10) == 3, 1.5, 1.0),
        "a 1%-bin at 20%": TRUTHS["confidence-like (12 bins)"] + np.eye(12)[2] * 0.2,
    }
    print(f"\n### 4. Power: predictions until the first alarm (median of {streams} streams, batches of 64)\n")
    print("| shift | median | 90th percentile | streams alarmed within 5,000 |")
    print("|---|---|---|---|")
    for name, shifted in shifts.items():
        base = TRUTHS["confidence-like (12 bins)"] if "bin" in name else truth
        firsts = []
        for s in range(streams):
            run = simulate_clean(base, reference, 1, length, seed=seed + s, batch=64, shifted=shifted,
                                 first_alarm=True)
            firsts.append(run.first_alarm[0])
        firsts = np.array(firsts, dtype=float)
        alarmed = firsts[firsts >= 0]
        median = f"{np.median(alarmed):.0f}" if len(alarmed) > streams / 2 else "> 5,000"
        p90 = f"{np.quantile(alarmed, 0.9):.0f}" if len(alarmed) >= 0.9 * streams else "> 5,000"
        print(f"| {name} | {median} | {p90} | {len(alarmed)}/{streams} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--reference", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"## Drift detectors on clean traffic (seed {args.seed}, references of {args.reference:,} predictions)")
    production(args.streams, args.days, args.reference, args.seed)
    small_thresholds(args.reference, args.seed)
    point_estimate(args.reference, args.seed)
    power(args.reference, args.seed)


if __name__ == "__main__":
    main()
