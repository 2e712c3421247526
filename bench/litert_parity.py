"""Unary and stream: the LiteRT-only server against today's default, alternating, several rounds.

The harness (bench/run.py) runs each scenario once per server; on a loaded machine one run can be
tens of percent off either way. This A/B repeats the single-caller unary and the one-stream runs
`--rounds` times on three servers started side by side, alternating their order each round, and
reports the medians of requests/s and of the server CPU per request (the steadier measure):

- `lite-venv`: the LiteRT-only server from .venv-lite (no TensorFlow installed);
- `main-venv-litert`: the same runtime from this venv (TensorFlow installed, not imported);
- `tf`: today's default, TensorFlow-hosted (`--runtime tflite`).

    python bench/litert_parity.py --models DIR [--cell lstm] [--rounds 4] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import servers, startup
from bench.run import bench

SCENARIOS = {"unary_c1": ["--concurrency", "1"], "stream_1": ["--mode", "stream", "--concurrency", "1", "--window", "32"]}


def measure(models: Path, cell: str, rounds: int, seconds: float) -> dict:
    """{"<server>/<scenario>": {median requests/s, median server CPU us per request, every round}}."""
    flags = ["--feedback-max-predictions", "10000"]
    configurations = {
        "lite-venv": (startup.lite_python(), ["--runtime", "litert"]),
        "main-venv-litert": (sys.executable, ["--runtime", "litert"]),
        "tf": (sys.executable, ["--runtime", "tflite"]),
    }
    started = {name: servers.start_ours(models, [*flags, *extra], python=python, name=name)
               for name, (python, extra) in configurations.items()}
    found: dict[str, dict[str, list[float]]] = {}
    try:
        for round_ in range(rounds):
            names = list(started) if round_ % 2 == 0 else list(started)[::-1]
            for scenario, args in SCENARIOS.items():
                for name in names:
                    server = started[name]
                    before = servers.tree_cpu_seconds(server.pid)
                    run = bench(server.target, cell, *args, duration=seconds, warmup=0.5)
                    used = servers.tree_cpu_seconds(server.pid) - before
                    sent = run["requests"] * (1 + 0.5 / seconds)  # warm-up requests estimated
                    per = found.setdefault(f"{name}/{scenario}", {"rate": [], "cpu_us": []})
                    per["rate"].append(run["requests_per_second"])
                    per["cpu_us"].append(1e6 * used / max(sent, 1))
    finally:
        for server in started.values():
            server.stop()
    return {key: {"median_requests_per_second": round(statistics.median(v["rate"])),
                  "median_server_cpu_us_per_request": round(statistics.median(v["cpu_us"])),
                  "rounds": {"rate": [round(x) for x in v["rate"]], "cpu_us": [round(x) for x in v["cpu_us"]]}}
            for key, v in found.items()}


def main() -> None:
    """Measure and print the JSON document."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    print(json.dumps(measure(args.models, args.cell, args.rounds, args.seconds), indent=1))


if __name__ == "__main__":
    main()
