"""The benchmark harness: our server against three baselines, in one run, on this machine.

    python bench/run.py            # full: rnn, lstm, gru (< 10 min)
    python bench/run.py --quick    # smoke: lstm only, short runs (< 2 min)
    python bench/run.py --publish  # also write docs/benchmarks/harness-<date>.md, to commit

Starts, one after another on free loopback ports, (1) a bare gRPC echo server answering with
messages of the real sizes, (2) a naive Keras server (one model.predict per request, the way
a first tutorial serves a model), (3) a naive server (one SavedModel call per request, no batching) and (4) our server,
and drives each with the same `digits bench` settings (a subprocess per scenario). Our server runs
LiteRT-only (from .venv-lite, no TensorFlow installed, when `make setup-lite` made it); beside it
"tf", today's TensorFlow-hosted default (`--runtime tflite`), for unary and stream runs, and in full
mode "xla" (`--runtime xla`) for batches; start-up, memory and (full mode) a rolling restart of
each are measured too (issue 23's targets, bench/litert_targets.py), and the server's CPU per
request with label-free monitoring on vs off, interleaved (issue 22, bench/monitoring_cost.py). Measures
in-process model throughput at the same batch sizes, then prints the comparison table with
ratios and writes JSON, Markdown and a latency-vs-throughput PNG into --out (scratch output,
not committed). Our server also takes the v2 load on its REST port (binary tensors and all-JSON)
beside its v2 gRPC (target "r"); with --peers, MLServer's REST port takes the all-JSON one.
--publish also writes the Markdown report as a dated page under docs/benchmarks/ for
docs/performance.md to link to.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench import monitoring_cost, report, rolling_restart, servers, startup  # noqa: E402
from tests.serverproc import source_env  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "mnist-9k.npz"
BATCH = 512


def bench(target: str, model: str, *args: str, duration: float, warmup: float) -> dict:
    """One `digits bench --json` run in its own process."""
    command = [sys.executable, "-m", "digits.cli", "bench", "--target", target, "--json", "--no-progress",
               "--warmup", str(warmup), *args]
    if "--count" not in args:
        command += ["--duration", str(duration)]
    if model:
        command += ["--model", model]
    if DATA.is_file():
        command += ["--data", str(DATA)]
    done = subprocess.run(command, capture_output=True, text=True, env=source_env(), timeout=900)
    if done.stdout.strip().startswith("{"):
        return json.loads(done.stdout)
    raise RuntimeError(f"digits bench failed ({done.returncode}): {done.stderr[-2000:]}")


def scenarios(quick: bool, pictures: dict[str, str] | None = None, peers: bool = False) -> dict[str, list[str]]:
    """Scenario name -> `digits bench` arguments (PNG uploads and v2 runs when given/asked)."""
    found = {
        "unary_c16": ["--concurrency", "16"],
        "unary_c1": ["--concurrency", "1"],
        "stream_1": ["--mode", "stream", "--concurrency", "1", "--window", "32"],
        f"batch{BATCH}_c2": ["--mode", "batch", "--batch-size", str(BATCH), "--concurrency", "2"],
    }
    if not quick:
        found |= {"unary_c4": ["--concurrency", "4"], "unary_c64": ["--concurrency", "64"]}
    # the REST port (issue 24) against our own v2 gRPC, same load (tritonclient.http's binary tensors)
    found |= {"v2_unary_c16": ["--protocol", "v2", "--concurrency", "16"],
              "v2rest_unary_c16": ["--protocol", "v2-rest", "--concurrency", "16"],
              "v2restjson_unary_c16": ["--protocol", "v2-rest-json", "--concurrency", "16"]}
    for name, path in (pictures or {}).items():
        found[f"{name}_c16"] = ["--concurrency", "16", "--image-file", path]
    if peers:  # the same Open Inference Protocol v2 load on digits-server and on MLServer
        found |= {"v2_unary_c1": ["--protocol", "v2", "--concurrency", "1"],
                  f"v2_batch{BATCH}_c2": ["--protocol", "v2", "--mode", "batch", "--batch-size", str(BATCH),
                                          "--concurrency", "2"]}
    return found


def prepare_models(cells: list[str], workdir: Path, quick: bool) -> Path:
    """Train small real models (speed does not depend on accuracy) with the project's trainer."""
    out = workdir / "models"
    code = (
        "from digits_trainer import api\n"
        f"api.train({','.join(cells)!r}, 'seed', epochs=1, data={str(DATA) if DATA.is_file() else 'sample'!r},"
        f" out={str(out)!r}, seed=1, train_limit={500 if quick else 1000}, plot=False, quiet=True)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=source_env(), capture_output=True, timeout=900)
    return out


SERVERS = ("echo", "predict", "savedmodel", "ours")
TODAYS_DEFAULT = ["--runtime", "tflite"]  # the TensorFlow-hosted runtime `auto` meant before issue 23


def applies(server: str, scenario: str) -> bool:
    """Which scenarios each server runs: the predict server only the headline, naive unary ones;
    PNG uploads only ours; v2 (gRPC or REST) runs ours and the peer (MLServer), which runs nothing else."""
    if scenario.startswith("v2rest_"):  # MLServer's REST has no binary tensors: it runs the JSON form only
        return server == "ours"
    if scenario.startswith(("v2_", "v2restjson_")):
        return server in ("ours", "mlserver")
    if server == "tf":  # today's default beside the LiteRT-only server
        return scenario in ("unary_c1", "unary_c16", "stream_1")
    if server == "xla":
        return scenario.startswith("batch")
    if server == "mlserver":
        return False
    if server == "predict":
        return scenario == "unary_c16"
    if server == "savedmodel":
        return scenario.startswith("unary")
    if scenario.startswith("png"):
        return server == "ours"
    return True


def drive(started: dict, cells: list[str], plan: dict[str, list[str]], timing: dict, log) -> dict:
    """Every scenario on every server, interleaved (scenario by scenario), so that the load other
    users put on the machine drifts over all servers alike and the ratios stay fair."""
    runs: dict[str, dict] = {name: {} for name in started}
    for cell in cells:
        for scenario, args in plan.items():
            for name, server in started.items():
                key = scenario if name == "echo" else f"{cell}/{scenario}"
                if not applies(name, scenario) or key in runs[name]:
                    continue
                cpu_before = servers.tree_cpu_seconds(server.pid)
                target = server.http_target if scenario.startswith("v2rest") else server.target
                run = runs[name][key] = bench(target, cell, *args, **timing)
                # server CPU per request: robust to the machine's noise (warm-up requests estimated)
                sent = run["requests"] * (1 + timing["warmup"] / timing["duration"])
                used = servers.tree_cpu_seconds(server.pid) - cpu_before
                run["server_cpu_us_per_request"] = round(1e6 * used / max(sent, 1), 1)
                log(f"  {name:<10} {key:<22} {run['requests_per_second']:>9,.0f} req/s  "
                    f"p50 {run['latency_ms']['p50']} ms  p99 {run['latency_ms']['p99']} ms")
    return runs


def memory_check(server, cells: list[str], log) -> dict:
    """RSS with the cells loaded (after the runs above), after 20k and after 100k more requests."""
    before = servers.rss_mb(server.pid)
    bench(server.target, cells[0], "--concurrency", "16", "--count", "20000", duration=0, warmup=0)
    at_20k = servers.rss_mb(server.pid)
    bench(server.target, cells[0], "--concurrency", "16", "--count", "80000", duration=0, warmup=0)
    at_100k = servers.rss_mb(server.pid)
    log(f"  memory: {before:.0f} MiB loaded, {at_20k:.0f} MiB after 20k, {at_100k:.0f} MiB after 100k requests")
    return {"loaded_mb": before, "after_20k_mb": at_20k, "after_100k_mb": at_100k}


def main(argv: list[str] | None = None) -> int:
    """Run the harness; exit 0 when it completed (targets are reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="lstm only, short runs, no memory soak (< 2 min)")
    parser.add_argument("--models", type=Path, help="model repository to serve (default: train small models)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results", help="where JSON/MD/PNG go")
    parser.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                        help="extra flag for our server, e.g. --server-flag=--max-batch-size=32")
    parser.add_argument("--peers", action="store_true",
                        help="also start MLServer 1.7.1 (its venv is made on first use, bench/peers/setup.sh) and "
                             "drive it and our server with the same v2 load")
    parser.add_argument("--publish", nargs="?", type=Path, const=report.PUBLISHED, metavar="DIR",
                        help="also write the Markdown report as DIR/harness-<date>.md, to commit "
                             f"(default DIR: {report.PUBLISHED.relative_to(REPO)})")
    args = parser.parse_args(argv)
    cells = ["lstm"] if args.quick else ["rnn", "lstm", "gru"]
    timing = {"duration": 2.0, "warmup": 0.5} if args.quick else {"duration": 4.0, "warmup": 1.0}
    began = time.monotonic()

    def log(text: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {text}", file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="digits-bench-"))
    models = args.models or prepare_models(["rnn", "lstm", "gru"] if not args.quick else cells, workdir, args.quick)
    log(f"models: {models}")
    pictures = json.loads(subprocess.run(
        [sys.executable, str(REPO / "bench" / "pictures.py"), "--out", str(workdir / "pictures"),
         *(["--data", str(DATA)] if DATA.is_file() else [])],
        capture_output=True, text=True, env=source_env(), check=True, timeout=300,
    ).stdout)
    log("uploads: " + ", ".join(f"{name} {cost['bytes']} B, decode+preprocess {cost['decode_and_preprocess_us']:.0f} us"
                                for name, cost in pictures["costs"].items()))
    plan = scenarios(args.quick, pictures["paths"], args.peers)
    tf_floor = memory_floor() if not args.quick else None
    inproc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "inprocess.py"), "--models", str(models), "--cells", ",".join(cells),
         "--batch-sizes", f"1,{BATCH}", "--seconds", "0.5" if args.quick else "1.0",
         *(["--data", str(DATA)] if DATA.is_file() else [])],
        capture_output=True, text=True, env=source_env(), check=True, timeout=600,
    )
    inprocess = json.loads(inproc.stdout)
    log(f"in-process measured (matmul peak {inprocess['matmul_gflops']:.0f} GFLOP/s)")
    lite_python = startup.lite_python()
    starts = {"litert": startup.measure(lite_python, models, ["--runtime", "litert"], 1 if args.quick else 3),
              "tensorflow": startup.measure(sys.executable, models, TODAYS_DEFAULT, 1 if args.quick else 3)}
    log("start-up: " + ", ".join(f"{name} {m['median_seconds']:.2f} s to SERVING, {m['median_rss_mb']:.0f} MiB"
                                  for name, m in starts.items()))
    restarts = None if args.quick else {
        "litert": rolling_restart.measure(models, lite_python, ["--runtime", "litert"]),
        "tensorflow": rolling_restart.measure(models, sys.executable, TODAYS_DEFAULT),
    }
    if restarts:
        log(f"rolling restart, seconds per replica: {restarts}")
    starters = {name: functools.partial(servers.start_baseline, name, models, cells) for name in SERVERS[:3]}
    # the feedback store (bounded, default 100k predictions) fills before the 20k-request mark of the
    # memory soak, so growth after it would be a leak, not the store filling up by design
    ours_flags = ["--feedback-max-predictions", "10000", *args.server_flag]
    starters["ours"] = functools.partial(servers.start_ours, models, ours_flags, python=lite_python)
    starters["tf"] = functools.partial(servers.start_ours, models, [*ours_flags, *TODAYS_DEFAULT], name="tf")
    if not args.quick:
        starters["xla"] = functools.partial(servers.start_ours, models, [*ours_flags, "--runtime", "xla"], name="xla")
    if args.peers:
        starters["mlserver"] = functools.partial(servers.start_mlserver, models, cells)
    with ThreadPoolExecutor(len(starters)) as pool:  # they start side by side, then idle until driven
        futures = {name: pool.submit(start) for name, start in starters.items()}
    failed = [name for name, future in futures.items() if future.exception() is not None]
    started = {name: future.result() for name, future in futures.items() if name not in failed}
    if failed:  # stop the ones that did start, then report the first failure
        for server in started.values():
            server.stop()
        futures[failed[0]].result()
    log("servers up: " + ", ".join(f"{name} {server.target}" for name, server in started.items()))
    peer_memory = None
    if "mlserver" in started:  # both idle with the cells loaded
        peer_memory = {"ours_mb": round(servers.tree_rss_mb(started["ours"].pid), 1),
                       "mlserver_mb": round(servers.tree_rss_mb(started["mlserver"].pid), 1),
                       "mlserver_processes": len(servers.process_tree(started["mlserver"].pid))}
        log(f"memory: ours {peer_memory['ours_mb']:.0f} MiB, MLServer {peer_memory['mlserver_mb']:.0f} MiB "
            f"({peer_memory['mlserver_processes']} processes)")
    try:
        runs = drive(started, cells, plan, timing, log)
        if not args.quick:
            runs["ours"]["memory"] = memory_check(started["ours"], cells, log)
    finally:
        for server in started.values():
            server.stop()
    # issue 22: server CPU per request with label-free monitoring on vs off, interleaved (target M)
    monitoring = monitoring_cost.measure(models, "lstm", args.quick, log=lambda text: log(f"  monitoring {text}"))
    log("monitoring on/off: " + ", ".join(f"{name} median {monitoring[name]['median_ratio']:.3f}"
                                           for name in monitoring_cost.TRAFFIC))
    document = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "mode": "quick" if args.quick else "full", "cells": cells,
        "timing": timing, "server_flags": ours_flags, "in_process": inprocess, "runs": runs,
        "seconds": round(time.monotonic() - began, 1), "uploads": pictures["costs"], "tensorflow_floor_mb": tf_floor,
        "peers": args.peers, "startup": starts, "rolling_restart": restarts, "peer_memory": peer_memory,
        "ours_python": lite_python, "monitoring": monitoring,
    }
    document["targets"] = report.targets(document)
    paths = report.write(document, args.out)
    if args.publish is not None:
        paths.append(report.publish(document, args.publish))
    print(report.table(document))
    log(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def memory_floor() -> float:
    """Resident MiB of a Python process that has only imported TensorFlow (the floor for target 7)."""
    code = ("import tensorflow, pathlib\n"
            "print([int(l.split()[1]) for l in pathlib.Path('/proc/self/status').read_text().splitlines()"
            " if l.startswith('VmRSS:')][0] / 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=source_env(), check=True)
    return float(done.stdout.split()[-1])


def machine() -> str:
    """'2 cores, 24 GiB, Linux x86_64, Python 3.11.2' and the load average at the start."""
    import os

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.machine()}, "
            f"Python {platform.python_version()}; load average at start {load}")


if __name__ == "__main__":
    sys.exit(main())
