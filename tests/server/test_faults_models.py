"""Model-folder faults on a real server under continuous load: the folder deleted while
serving, half-written versions (ignored until renamed into place, as the trainer publishes),
the trainer publishing into a live repository, and a load that hangs. Each ends with zero
failed requests and the server still serving."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.loadgen import BackgroundLoad, TrafficKind
from tests.modelrepo import publish_version, wait_for
from tests.serverproc import ServerProcess, start_server

POLL = "0.2"


@pytest.fixture()
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        assert proc.stop() == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()


def classify_mix(digit: np.ndarray):
    request = pb.ClassifyRequest(image=pb.Image(pixels=digit.tobytes()))

    def mix(channel: grpc.aio.Channel) -> list[TrafficKind]:
        stub = pb_grpc.DigitClassifierStub(channel)
        return [TrafficKind("classify", 1, lambda: stub.Classify(request, timeout=30))]

    return mix


def versions(channel: grpc.Channel, name: str = "gru") -> dict[int, pb.ModelVersionStatus]:
    status = pb_grpc.DigitClassifierStub(channel).GetModelStatus(pb.GetModelStatusRequest(name=name), timeout=30)
    return {v.version: v for v in status.versions}


def served_version(channel: grpc.Channel, digit: np.ndarray) -> int:
    request = pb.ClassifyRequest(image=pb.Image(pixels=digit.tobytes()))
    answer = pb_grpc.DigitClassifierStub(channel).Classify(request, timeout=30)
    return answer.served_by.version


def assert_no_failures(load: BackgroundLoad) -> None:
    codes = load.recorder.codes()
    assert set(codes) == {"OK"} and codes["OK"] > 10, codes


def test_model_folder_deleted_while_serving(gru_repo: Path, servers, test_digit: np.ndarray) -> None:
    proc = start_server(gru_repo, "--default-model", "gru", "--poll-seconds", POLL)
    servers.append(proc)
    with grpc.insecure_channel(proc.target) as channel, BackgroundLoad(proc.target, classify_mix(test_digit)) as load:
        backup = gru_repo.parent / "backup"
        shutil.copytree(gru_repo / "gru", backup)
        shutil.rmtree(gru_repo / "gru")
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=60)
        shutil.rmtree(gru_repo)  # the whole repository, too
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=60)
        wait_for(lambda: load.recorder.codes()["OK"] > 50, what="requests served after the deletion")
        # what was loaded keeps serving, and says so
        assert versions(channel)[1].state == pb.MODEL_STATE_AVAILABLE
        health = health_pb2_grpc.HealthStub(channel)
        assert health.Check(health_pb2.HealthCheckRequest(service="gru"), timeout=10).status == (
            health_pb2.HealthCheckResponse.SERVING
        )
        # the folder comes back: nothing changes for the callers
        gru_repo.mkdir()
        shutil.copytree(backup, gru_repo / "gru")
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=60)
        assert served_version(channel, test_digit) == 1
    assert_no_failures(load)
    assert "does not exist" in proc.log()  # the deletion is reported


def test_half_written_versions_are_ignored_until_renamed_into_place(gru_repo: Path, servers, test_digit: np.ndarray) -> None:
    proc = start_server(gru_repo, "--default-model", "gru", "--poll-seconds", POLL)
    servers.append(proc)
    with grpc.insecure_channel(proc.target) as channel, BackgroundLoad(proc.target, classify_mix(test_digit)) as load:
        # the trainer's way: a hidden .tmp-* folder, written piece by piece
        staging = gru_repo / "gru" / ".tmp-2-inprogress"
        staging.mkdir()
        shutil.copy(gru_repo / "gru" / "1" / "saved_model.pb", staging)  # no variables yet
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=60)
        # a folder with a version number but no saved_model.pb yet (a copy in progress)
        (gru_repo / "gru" / "3" / "variables").mkdir(parents=True)
        shutil.copy(gru_repo / "gru" / "1" / "variables" / "variables.index", gru_repo / "gru" / "3" / "variables")
        pb_grpc.DigitsAdminStub(channel).ReloadModels(pb.ReloadModelsRequest(), timeout=60)
        assert set(versions(channel)) == {1} and served_version(channel, test_digit) == 1
        # complete, then renamed into place in one step: now it is a version
        shutil.rmtree(gru_repo / "gru" / "3")
        shutil.rmtree(staging)
        publish_version(gru_repo, "gru", 1, 2)
        wait_for(lambda: served_version(channel, test_digit) == 2, what="version 2 to serve")
        wait_for(lambda: set(versions(channel)) == {2}, what="version 1 to be unloaded")
    assert_no_failures(load)


def test_the_trainer_publishes_into_a_live_repository(gru_repo: Path, servers, test_digit: np.ndarray, tiny_npz: Path) -> None:
    from digits_trainer import train

    proc = start_server(gru_repo, "--default-model", "gru", "--poll-seconds", "0.05")
    servers.append(proc)
    seen: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch() -> None:
        with grpc.insecure_channel(proc.target) as channel:
            while not stop.is_set():
                seen.extend((v.version, v.state) for v in versions(channel).values())

    watcher = threading.Thread(target=watch)
    with grpc.insecure_channel(proc.target) as channel, BackgroundLoad(proc.target, classify_mix(test_digit)) as load:
        watcher.start()
        try:
            train(cells=("gru",), recipe="seed", epochs=1, data=tiny_npz, out=gru_repo, seed=1, plot=False, quiet=True)
            wait_for(lambda: served_version(channel, test_digit) == 2, what="the trained version to serve")
        finally:
            stop.set()
            watcher.join(30)
    assert_no_failures(load)
    assert (2, pb.MODEL_STATE_AVAILABLE) in seen
    assert all(state != pb.MODEL_STATE_FAILED for _, state in seen), "the server saw a half-written version"


def test_a_load_that_hangs_times_out_while_serving_goes_on(gru_repo: Path, servers, test_digit: np.ndarray) -> None:
    """A version whose variables take far longer to read than the load timeout, like a hung network
    mount: a 1 TiB sparse file. (A FIFO is no longer a way to hang a load: model_trust refuses it
    before reading.)"""
    proc = start_server(gru_repo, "--default-model", "gru", "--poll-seconds", POLL, "--load-timeout-seconds", "3")
    servers.append(proc)
    staging = gru_repo / "gru" / ".tmp-2"
    shutil.copytree(gru_repo / "gru" / "1", staging)
    data_file = staging / "variables" / "variables.data-00000-of-00001"
    with open(data_file, "r+b") as data:
        data.truncate(1 << 40)  # sparse: no disk used, but reading its zeros takes minutes
    try:
        with grpc.insecure_channel(proc.target) as channel, BackgroundLoad(proc.target, classify_mix(test_digit)) as load:
            os.rename(staging, gru_repo / "gru" / "2")
            wait_for(lambda: 2 in versions(channel), what="version 2 to start loading")
            served_while_hung = load.recorder.codes()["OK"]
            wait_for(lambda: versions(channel)[2].state == pb.MODEL_STATE_FAILED, timeout=60, what="the timeout")
            assert "load timed out after 3s" in versions(channel)[2].error
            assert load.recorder.codes()["OK"] > served_while_hung  # the event loop never froze
            assert served_version(channel, test_digit) == 1
        assert_no_failures(load)
        assert "failed to load: load timed out" in proc.log()
    finally:  # release the slow reader: it meets end-of-file at once
        hung = gru_repo / "gru" / "2" / "variables" / "variables.data-00000-of-00001"
        if hung.exists():
            os.truncate(hung, 0)
