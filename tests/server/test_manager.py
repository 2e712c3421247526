"""The model manager in-process with real SavedModels: load timeouts, draining before unload,
availability preservation and the on_change hook."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from digits_server.core.domain import ModelSelector
from digits_server.core.errors import ModelUnavailable
from digits_server.core.manager import AVAILABLE, END, FAILED, LOADING, UNLOADING, ModelManager, savedmodel_loader
from digits_server.core.repository import ModelSource
from tests.modelrepo import private_repo

pytestmark = pytest.mark.asyncio


@pytest.fixture()
def repo(model_repo: Path, tmp_path: Path) -> Path:
    return private_repo(model_repo, tmp_path / "models", ("rnn",))


async def test_a_hanging_load_times_out_as_failed_and_the_old_version_keeps_serving(repo: Path) -> None:
    release = threading.Event()
    real_loader = savedmodel_loader((1,))

    def loader(name: str, version: int, path: Path):
        if version == 2:
            release.wait(30)  # a load that hangs (a stuck file system, a pathological graph)
        return real_loader(name, version, path)

    manager = ModelManager(ModelSource(repo), "rnn", loader=loader)
    await manager.reload()
    manager.load_timeout = 1.0  # after version 1, whose first load also imports TensorFlow
    shutil.copytree(repo / "rnn" / "1", repo / "rnn" / "2")
    try:
        await manager.reload()
        slots = {s.version: s for s in manager.slots()["rnn"]}
        assert slots[2].state == FAILED and "timed out after 1s" in slots[2].error
        assert slots[1].state == AVAILABLE
        assert manager.resolve(ModelSelector("rnn")).version == 1
    finally:
        release.set()
        await manager.close()


async def test_unload_waits_for_in_flight_requests(repo: Path) -> None:
    manager = ModelManager(ModelSource(repo), "rnn", loader=savedmodel_loader((1,)), unload_grace=30)
    seen: list[tuple[int, str]] = []
    manager.on_change.append(lambda slot: seen.append((slot.version, slot.state)))
    await manager.reload()
    with manager.lease(ModelSelector("rnn")) as old:
        shutil.copytree(repo / "rnn" / "1", repo / "rnn" / "2")
        await manager.reload()
        assert manager.resolve(ModelSelector("rnn")).version == 2  # new requests go to the new version
        await asyncio.sleep(0.2)
        assert {s.version: s.state for s in manager.slots()["rnn"]} == {2: AVAILABLE, 1: UNLOADING}
        with pytest.raises(ModelUnavailable, match="UNLOADING"):
            manager.resolve(ModelSelector("rnn", version=1))
        assert old.predict(np.zeros((1, 28, 28), np.uint8)).shape == (1, 10)  # still usable while leased
    for _ in range(50):
        await asyncio.sleep(0.05)
        if [s.version for s in manager.slots()["rnn"]] == [2]:
            break
    assert [s.version for s in manager.slots()["rnn"]] == [2]
    assert seen == [(1, LOADING), (1, AVAILABLE), (2, LOADING), (2, AVAILABLE), (1, UNLOADING), (1, END)]
    await manager.close()


async def test_a_failed_version_is_retried_once_its_files_change(repo: Path) -> None:
    manager = ModelManager(ModelSource(repo), "rnn", loader=savedmodel_loader((1,)))
    broken = repo / "rnn" / "2"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"garbage")
    await manager.reload()
    assert {s.version: s.state for s in manager.slots()["rnn"]} == {2: FAILED, 1: AVAILABLE}
    shutil.rmtree(broken)
    shutil.copytree(repo / "rnn" / "1", broken)
    await manager.reload()
    await asyncio.sleep(0.1)
    states = {s.version: s.state for s in manager.slots()["rnn"]}
    assert states[2] == AVAILABLE and states.get(1) in (UNLOADING, None)
    await manager.close()
