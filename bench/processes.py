"""What several serving processes would give on this machine: N copies of our server, each driven
by its own `digits bench` client at the same time, against one server driven by one client.

Usage: python bench/processes.py --models MODELS [--processes 2] [--concurrency 16] [--seconds 8]

Each server is a separate `digits-server` process on its own free port (the CPU picture is the
one SO_REUSEPORT workers would have: one event loop and GIL per process, one connection pinned
to each). Prints one JSON document: total requests/s and server CPU per request for 1 and N.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import servers  # noqa: E402
from bench.run import bench  # noqa: E402


def measure(models: Path, processes: int, concurrency: int, seconds: float, model: str) -> dict:
    """Start `processes` servers, drive each with `concurrency` callers at once, stop them."""
    started = [servers.start_ours(models, ["--feedback-max-predictions", "0"]) for _ in range(processes)]
    try:
        for server in started:  # warm-up, one at a time
            bench(server.target, model, "--concurrency", str(concurrency), duration=1, warmup=0)
        cpu_before = [servers.cpu_seconds(s.pid) for s in started]
        with ThreadPoolExecutor(processes) as pool:
            runs = list(pool.map(
                lambda s: bench(s.target, model, "--concurrency", str(concurrency), duration=seconds, warmup=1),
                started,
            ))
        cpu = sum(servers.cpu_seconds(s.pid) for s in started) - sum(cpu_before)
    finally:
        for server in started:
            server.stop()
    requests = sum(r["requests"] for r in runs)
    return {
        "processes": processes,
        "callers_per_process": concurrency,
        "requests_per_second": round(sum(r["requests_per_second"] for r in runs), 1),
        "p99_ms": max(r["latency_ms"]["p99"] for r in runs),
        "server_cpu_us_per_request": round(1e6 * cpu / max(requests, 1), 1),
        "client_cpu_percent": round(sum(r["client_cpu_percent"] for r in runs), 1),
    }


def main() -> None:
    """Parse flags, measure 1 process then N, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="callers per process")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--model", default="lstm")
    args = parser.parse_args()
    one = measure(args.models, 1, args.concurrency * args.processes, args.seconds, args.model)
    many = measure(args.models, args.processes, args.concurrency, args.seconds, args.model)
    print(json.dumps({"one_process": one, "several": many,
                      "speedup": round(many["requests_per_second"] / one["requests_per_second"], 2)}, indent=2))


if __name__ == "__main__":
    main()
