"""A rolling restart of a fleet, timed: three replicas behind a real Envoy (tests/envoyproc.py, the
fleet the fault tests use); each replica in turn gets SIGTERM, is started again on its ports, and
the step ends when Envoy's health checks see every replica healthy again. The figure is each step's
seconds (SIGTERM -> back in Envoy's rotation), without load (tests/deploy/test_fleet_faults.py runs
the same steps under load and counts failed requests).

    python bench/rolling_restart.py --models DIR [--python .venv-lite/bin/python] [-- FLAGS...]
prints the seconds per replica as JSON (bench/run.py calls `measure`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.envoyproc import start_fleet


def measure(models: Path, python: str, flags: list[str], replicas: int = 3) -> dict[str, list[float]]:
    """For each replica, one after another: "back" seconds from SIGTERM until Envoy routes to it
    again, and of those, "stopping" (SIGTERM -> exit: the drain) and "starting" (exec -> ready file)."""
    fleet = start_fleet(models, replicas, "--poll-seconds", "0", *flags, python=python)
    found: dict[str, list[float]] = {"back": [], "stopping": [], "starting": []}
    try:
        for index in range(replicas):
            began = time.monotonic()
            if fleet.replicas[index].stop() != 0:
                raise RuntimeError(f"replica {index} did not exit cleanly:\n{fleet.replicas[index].log()}")
            stopped = time.monotonic()
            fleet.restart(index)
            started = time.monotonic()
            fleet.wait_healthy()
            found["back"].append(round(time.monotonic() - began, 2))
            found["stopping"].append(round(stopped - began, 2))
            found["starting"].append(round(started - stopped, 2))
    finally:
        fleet.stop()
    return found


def main() -> None:
    """Measure one configuration and print the JSON list."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--python", type=lambda p: str(Path(p).absolute()), default=sys.executable)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("flags", nargs="*", help="server flags (after --)")
    args = parser.parse_args()
    print(json.dumps(measure(args.models, args.python, args.flags, args.replicas)))


if __name__ == "__main__":
    main()
