"""The committed generated gRPC code must be what proto/generate.py produces today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("generate", REPO / "proto" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generator = load_generator()
    written = generator.generate(tmp_path)
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
