"""`make fleet` (deploy/fleet.py): the one command that starts three replicas and Envoy on loopback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from tests.modelrepo import private_repo
from tests.promproc import free_port
from tests.serverproc import REPO, source_env


@pytest.mark.slow
def test_the_fleet_command_serves_through_envoy_and_stops_on_ctrl_c(model_repo: Path, tmp_path: Path) -> None:
    from digits.v1 import digits_pb2 as pb
    from digits.v1 import digits_pb2_grpc

    repo = private_repo(model_repo, tmp_path / "models", cells=("gru", "lstm"))
    port, first, metrics, admin = free_port(), free_port(), free_port(), free_port()
    command = [sys.executable, str(REPO / "deploy" / "fleet.py"), "--models", str(repo), "--replicas", "2",
               "--port", str(port), "--first-replica-port", str(first), "--first-metrics-port", str(metrics),
               "--admin-port", str(admin), "--workdir", str(tmp_path / "fleet")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env=source_env())
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("fleet ready"):
                break
        assert f"target 127.0.0.1:{port}" in "".join(lines), "".join(lines)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = digits_pb2_grpc.DigitClassifierStub(channel)
            answers = [stub.Classify(pb.ClassifyRequest(model_spec=pb.ModelSpec(name="gru"),
                                                        image=pb.Image(pixels=bytes(784))), timeout=30)
                       for _ in range(40)]
        assert {a.served_by.model for a in answers} == {"gru"}
        assert (tmp_path / "fleet" / "models.yaml").is_file()
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, "".join(lines) + rest
    assert "stopping the fleet" in rest
    time.sleep(0.5)
    logs = sorted((tmp_path / "fleet").glob("replica-*.log"))
    assert len(logs) == 2 and all("shutting down" in log.read_text() for log in logs)
