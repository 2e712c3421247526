"""Scale-out benchmark: 1, 2 and 3 digits-server replicas behind a real Envoy and behind client-side
round_robin, on this machine. Not a timed test: it prints a table (and --json) for docs/scaling.md.

Usage: python bench/replicas.py --models MODELS [--cell gru] [--seconds 8] [--concurrency 32] [--replicas 1,2,3]

Per configuration, the closed-loop `digits bench` driver (digits.loadtest.driver, the code behind
`digits bench --concurrency N`) sends single-image Classify requests for --seconds after a 1 s warm-up:
- envoy: one channel to Envoy (deploy/envoy/envoy.yaml's policy, loopback endpoints), which
  balances each request over the first N replicas;
- round_robin: one channel to `ipv4:127.0.0.1:P1,...,127.0.0.1:PN` with the service config
  {"loadBalancingConfig": [{"round_robin": {}}]}: one subchannel per replica, requests alternate.
Reported: requests/s, p50/p99 latency, errors, and CPU seconds per 1,000 requests of the replicas
(utime+stime from /proc/PID/stat of each, summed), of Envoy and of the client. On a 2-core machine the
total is capped by the cores; CPU per request shows what more cores would scale.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from digits.loadtest import driver
from digits.loadtest.stats import Recorder, summary
from tests.envoyproc import start_envoy
from tests.serverproc import start_server

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def run_load(target: str, cell: str, seconds: float, concurrency: int, round_robin: bool) -> dict:
    """The closed-loop driver against `target`; round_robin adds the service config to its channel."""
    original = driver.channel_options
    if round_robin:
        driver.channel_options = lambda: [*original(), ("grpc.service_config", ROUND_ROBIN)]
    try:
        config = driver.BenchConfig(target=target, concurrency=concurrency, duration=seconds, warmup=1.0, model=cell)
        images = np.random.default_rng(0).integers(0, 256, (256, 28, 28), dtype=np.uint8)
        recorder = Recorder()
        asyncio.run(driver.run(config, images, recorder))
        return summary(recorder)
    finally:
        driver.channel_options = original


def measure(name: str, target: str, pids: dict[str, list[int]], args: argparse.Namespace, round_robin: bool) -> dict:
    before = {group: [cpu_seconds(p) for p in members] for group, members in pids.items()}
    client_before = time.process_time()
    result = run_load(target, args.cell, args.seconds, args.concurrency, round_robin)
    client = time.process_time() - client_before
    used = {group: sum(cpu_seconds(p) for p in members) - sum(before[group]) for group, members in pids.items()}
    total = max(result["requests"], 1)  # CPU of the warm-up second is included: per request over all sent
    sent = result["requests"] + round(result["requests_per_second"] * 1.0)
    row = {
        "setup": name, "requests_per_second": result["requests_per_second"],
        "p50_ms": result["latency_ms"]["p50"], "p99_ms": result["latency_ms"]["p99"],
        "errors": sum(result["errors"].values()),
        "server_cpu_ms_per_request": round(1000 * used["replicas"] / sent, 3),
        "envoy_cpu_ms_per_request": round(1000 * used.get("envoy", 0.0) / sent, 3),
        "client_cpu_ms_per_request": round(1000 * client / sent, 3),
        "replica_cpu_seconds": round(used["replicas"], 2), "requests": total,
    }
    print(f"  {name:<22} {row['requests_per_second']:>8.0f} req/s  p50 {row['p50_ms']:>6.1f} ms  "
          f"p99 {row['p99_ms']:>7.1f} ms  errors {row['errors']}  CPU ms/request: server "
          f"{row['server_cpu_ms_per_request']:.3f}, envoy {row['envoy_cpu_ms_per_request']:.3f}, "
          f"client {row['client_cpu_ms_per_request']:.3f}", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, required=True, help="model repository (copied; never changed)")
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--replicas", default="1,2,3", help="replica counts to measure (default 1,2,3)")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.replicas.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="digits-bench-replicas-"))
    repo = workdir / "models"
    shutil.copytree(args.models / args.cell, repo / args.cell)
    print(f"starting {max(counts)} replicas of {args.cell} ...", flush=True)
    replicas = []
    for i in range(max(counts)):
        (workdir / f"replica-{i}").mkdir()
        replicas.append(start_server(repo, "--default-model", args.cell, "--poll-seconds", "0",
                                     workdir=workdir / f"replica-{i}"))
    rows = []
    try:
        time.sleep(15)  # let each replica's background XLA compilation finish before measuring
        run_load(replicas[0].target, args.cell, 2.0, args.concurrency, False)  # warm the client path
        print(f"{os.cpu_count()} CPUs; closed loop, {args.concurrency} callers, single-image Classify, "
              f"{args.seconds:g} s per row", flush=True)
        for n in counts:
            group = replicas[:n]
            envoy = start_envoy([r.target for r in group], workdir=Path(tempfile.mkdtemp(dir=workdir)),
                                health_check_interval=1.0)
            try:
                deadline = time.monotonic() + 60
                while len(envoy.healthy()) < n and time.monotonic() < deadline:
                    time.sleep(0.1)
                pids = {"replicas": [r.process.pid for r in group], "envoy": [envoy.process.pid]}
                rows.append(measure(f"{n} x envoy", envoy.target, pids, args, round_robin=False) | {"replicas": n})
            finally:
                envoy.stop()
            target = "ipv4:" + ",".join(r.target for r in group)
            pids = {"replicas": [r.process.pid for r in group]}
            rows.append(measure(f"{n} x round_robin", target, pids, args, round_robin=True) | {"replicas": n})
    finally:
        for replica in replicas:
            replica.stop()
    print("\n| replicas | balancing | requests/s | p50 ms | p99 ms | errors | server CPU ms/request | "
          "Envoy CPU ms/request | client CPU ms/request |")
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['replicas']} | {row['setup'].split(' x ')[1]} | {row['requests_per_second']:,.0f} | "
              f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['errors']} | {row['server_cpu_ms_per_request']:.3f} | "
              f"{row['envoy_cpu_ms_per_request']:.3f} | {row['client_cpu_ms_per_request']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
