"""The committed generated gRPC code must be what proto/generate.py produces today."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    # protoc runs in a child process: in a process that has imported TensorFlow (other tests
    # do), grpc_tools' protoc crashes with a segmentation fault (two protobuf runtimes).
    completed = subprocess.run(
        [sys.executable, str(REPO / "proto" / "generate.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    written = [Path(line) for line in completed.stdout.splitlines() if line.strip()]
    assert written, "the generator produced nothing"
    stale = []
    for path in written:
        committed = REPO / path.relative_to(tmp_path)
        if not committed.exists() or committed.read_bytes() != path.read_bytes():
            stale.append(str(committed.relative_to(REPO)))
    assert not stale, f"stale generated code (run `python proto/generate.py`): {stale}"


def test_every_proto_is_generated() -> None:
    generator = load_generator()
    targets = {proto for proto, _ in generator.TARGETS}
    protos = {str(p.relative_to(REPO / "proto")) for p in (REPO / "proto").rglob("*.proto")}
    assert protos <= targets, f"protos without a generation target: {sorted(protos - targets)}"
