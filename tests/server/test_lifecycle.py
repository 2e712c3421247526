"""Model lifecycle on a real server process: version swap under load, FAILED versions, version
policies and labels from --model-config, hot reload by polling and by the admin RPC."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.modelrepo import private_repo
from tests.serverproc import ServerProcess, start_server


def add_version(repo: Path, cell: str, source: int, version: int) -> Path:
    """Publish a copy of an existing version as a new one, atomically (like the trainer)."""
    staging = repo / cell / f".tmp-{version}"
    shutil.copytree(repo / cell / str(source), staging)
    target = repo / cell / str(version)
    os.rename(staging, target)
    return target


def add_corrupt_version(repo: Path, cell: str, version: int) -> Path:
    """A version folder whose saved_model.pb is garbage."""
    folder = repo / cell / str(version)
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"this is not a SavedModel" * 10)
    return folder


def states(stub: pb_grpc.DigitClassifierStub, cell: str) -> dict[int, pb.ModelVersionStatus]:
    return {v.version: v for v in stub.GetModelStatus(pb.GetModelStatusRequest(name=cell), timeout=30).versions}


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture()
def repo(model_repo: Path, tmp_path: Path) -> Path:
    """A private copy of the trainer's repository with the GRU only (fast to load), safe to change."""
    return private_repo(model_repo, tmp_path / "models")


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"][:64]


@pytest.fixture()
def channel_to() -> Iterator:
    opened: list[tuple[ServerProcess, grpc.Channel]] = []

    def connect(server: ServerProcess) -> grpc.Channel:
        channel = grpc.insecure_channel(server.target)
        opened.append((server, channel))
        return channel

    yield connect
    for server, channel in opened:
        channel.close()
        server.stop()


def test_version_swap_under_load_has_no_errors_and_the_new_version_serves(repo, digits, channel_to) -> None:
    server = start_server(repo, "--poll-seconds", "0", "--default-model", "gru")
    channel = channel_to(server)
    stub = pb_grpc.DigitClassifierStub(channel)
    admin = pb_grpc.DigitsAdminStub(channel)
    served: list[int] = []
    failures: list[str] = []
    stop = threading.Event()

    def send_forever(worker: int) -> None:
        i = worker
        while not stop.is_set():
            try:
                reply = stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=digits[i % len(digits)].tobytes())),
                                      timeout=30)
                served.append(reply.served_by.version)
            except grpc.RpcError as exc:
                failures.append(f"{exc.code()}: {exc.details()}")
            i += 4

    workers = [threading.Thread(target=send_forever, args=(w,)) for w in range(4)]
    for w in workers:
        w.start()
    try:
        wait_for(lambda: len(served) > 20, what="traffic on version 1")
        add_version(repo, "gru", 1, 2)
        reply = admin.ReloadModels(pb.ReloadModelsRequest(), timeout=120)
        gru = {m.name: m for m in reply.models}["gru"]
        assert [v.version for v in gru.versions if v.state == pb.MODEL_STATE_AVAILABLE] == [2]
        before = len(served)
        wait_for(lambda: len(served) > before + 50, what="traffic after the swap")
        wait_for(lambda: list(states(stub, "gru")) == [2], what="version 1 to be unloaded")
        after_unload = len(served)
        wait_for(lambda: len(served) > after_unload + 20, what="traffic after the unload")
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert failures == []
    assert served[0] == 1 and set(served[after_unload:]) == {2}
    assert states(stub, "gru")[2].state == pb.MODEL_STATE_AVAILABLE
    assert "gru version 1 unloaded" in server.log()


def test_corrupt_version_is_failed_and_never_replaces_the_working_one(repo, digits, channel_to) -> None:
    server = start_server(repo, "--poll-seconds", "0.2", "--default-model", "gru")
    stub = pb_grpc.DigitClassifierStub(channel_to(server))
    add_corrupt_version(repo, "gru", 5)
    wait_for(lambda: 5 in states(stub, "gru") and states(stub, "gru")[5].state == pb.MODEL_STATE_FAILED,
             what="version 5 to be FAILED by polling")
    versions = states(stub, "gru")
    assert versions[5].error and versions[1].state == pb.MODEL_STATE_AVAILABLE
    reply = stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=digits[0].tobytes())), timeout=30)
    assert reply.served_by.version == 1
    with pytest.raises(grpc.RpcError) as pinned:
        stub.Classify(pb.ClassifyRequest(model_spec=pb.ModelSpec(name="gru", version=5),
                                         image=pb.Image(pixels=digits[0].tobytes())), timeout=30)
    assert pinned.value.code() == grpc.StatusCode.UNAVAILABLE and "FAILED" in pinned.value.details()
    assert "gru version 5 failed to load" in server.log()
    time.sleep(0.6)  # a few more polls: the failed version is not retried while its files are unchanged
    assert server.log().count("gru version 5 failed to load") == 1


def test_version_policy_and_labels_from_the_model_config(repo, digits, channel_to, tmp_path: Path) -> None:
    for version in (2, 3):
        add_version(repo, "gru", 1, version)
    config = tmp_path / "models.yaml"
    config.write_text("models:\n  gru:\n    version_policy: {specific: [3]}\n    labels: {stable: 1, canary: 3}\n")
    server = start_server(repo, "--model-config", str(config), "--poll-seconds", "0")
    channel = channel_to(server)
    stub = pb_grpc.DigitClassifierStub(channel)
    versions = states(stub, "gru")
    assert sorted(versions) == [1, 3]  # 3 by policy, 1 because a label points at it; 2 not served
    assert list(versions[1].labels) == ["stable"] and list(versions[3].labels) == ["canary"]
    image = pb.Image(pixels=digits[0].tobytes())
    for label, version in (("stable", 1), ("canary", 3)):
        spec = pb.ModelSpec(name="gru", version_label=label)
        assert stub.Classify(pb.ClassifyRequest(model_spec=spec, image=image), timeout=30).served_by.version == version
    with pytest.raises(grpc.RpcError) as unknown:
        stub.Classify(pb.ClassifyRequest(model_spec=pb.ModelSpec(name="gru", version_label="beta"), image=image))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND and "canary" in unknown.value.details()

    config.write_text('{"models": {"gru": {"version_policy": "all"}}}')  # YAML reads JSON too
    pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=120)
    assert sorted(states(stub, "gru")) == [1, 2, 3]

    config.write_text("models:\n  gru:\n    version_policy: {latest: zero}\n")
    with pytest.raises(grpc.RpcError) as bad:
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=120)
    assert bad.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "models.gru.version_policy.latest" in bad.value.details()
    assert sorted(states(stub, "gru")) == [1, 2, 3]  # the previous config stays in force


def test_a_bad_model_config_stops_the_server_at_startup_naming_the_key(repo, tmp_path: Path) -> None:
    config = tmp_path / "models.json"
    config.write_text('{"models": {"gru": {"labels": {"stable": "one"}}}}')
    with pytest.raises(RuntimeError, match=r"models\.gru\.labels\.stable"):
        start_server(repo, "--model-config", str(config))
