"""Shadow mirroring in the data plane, on an in-process server with real SavedModels: the caller
gets exactly the primary's answer without waiting for the shadow, and the shadow is counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from digits_server.app import DigitsServer
from digits_server.core.domain import CallRecord, ModelSelector
from digits_server.experiments.router import Arm, Experiment
from digits_server.settings import Settings

pytestmark = pytest.mark.asyncio


class GatedRunner:
    """The server's own runner, except that calls for `gated` models wait until the gate opens."""

    def __init__(self, runner, gated: str) -> None:
        self.runner = runner
        self.gated = gated
        self.gate = asyncio.Event()
        self.waiting = 0

    async def run(self, model, images, deadline):
        if model.name == self.gated:
            self.waiting += 1
            await self.gate.wait()
        return await self.runner.run(model, images, deadline)


@pytest_asyncio.fixture
async def server(model_repo: Path):
    server = DigitsServer(Settings(models=model_repo, port=0, metrics_port=-1, poll_seconds=0))
    await server.start()
    yield server
    await server.stop(0)


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:16], data["y_test"][:16].astype(int)


def shadowed(percent: float = 100) -> Experiment:
    """lstm serves everything; gru (weight 0) sees every request as a shadow."""
    return Experiment("shadowed", (Arm("lstm", ModelSelector("lstm"), 1), Arm("gru", ModelSelector("gru"), 0)),
                      shadow_percent=percent)


async def until(condition, seconds: float = 60.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_primary_answer_is_returned_before_and_regardless_of_the_shadow(server: DigitsServer, digits) -> None:
    images, labels = digits
    plane = server.dataplane
    direct = await plane.classify(ModelSelector("lstm"), images, [None] * len(images), "", CallRecord("Classify"))
    await server.experiments.create(shadowed())
    gated = GatedRunner(plane.runner, "gru")
    plane.runner = gated

    call = CallRecord("ClassifyBatch")
    outcome = await asyncio.wait_for(
        plane.classify(ModelSelector(experiment="shadowed"), images, labels.tolist(), "r-1", call), timeout=60
    )
    # Answered while the shadow model call is still blocked: the caller never waits for it.
    await until(lambda: gated.waiting == 1)
    assert not gated.gate.is_set()
    assert (outcome.served_by.experiment, outcome.served_by.arm, outcome.served_by.model) == ("shadowed", "lstm", "lstm")
    assert (call.experiment, call.arm) == ("shadowed", "lstm")
    np.testing.assert_array_equal(outcome.digits, direct.digits)
    np.testing.assert_allclose(outcome.probabilities, direct.probabilities, rtol=1e-5, atol=1e-6)
    counts = server.experiments.observer.counts("shadowed")
    assert counts.arms["gru"].shadow_predictions == 0

    gated.gate.set()
    await until(lambda: counts.arms["gru"].shadow_predictions == len(images))
    pair = counts.pairs[("lstm", "gru")]
    assert pair.agree + pair.disagree == len(images)
    assert sum(pair.outcomes.values()) == len(images)
    # The shadow's answers are gru's own: agreement matches what gru says directly.
    gru = await plane.classify(ModelSelector("gru"), images, [None] * len(images), "", CallRecord("Classify"))
    assert pair.agree == int(np.sum(gru.digits == direct.digits))
    right_lstm, right_gru = direct.digits == labels, gru.digits == labels
    assert pair.outcomes["only_a_right"] == int(np.sum(right_lstm & ~right_gru))
    assert pair.outcomes["only_b_right"] == int(np.sum(~right_lstm & right_gru))
    # Shadows are not the arm's live traffic.
    assert counts.arms["gru"].labelled == 0 and counts.arms["lstm"].labelled == len(images)


async def test_shadows_beyond_the_in_flight_bound_are_skipped(server: DigitsServer, digits) -> None:
    images, labels = digits
    plane = server.dataplane
    plane.max_shadows_in_flight = 2
    await server.experiments.create(shadowed())
    gated = GatedRunner(plane.runner, "gru")
    plane.runner = gated
    for i in range(5):
        await plane.classify(ModelSelector(experiment="shadowed"), images[:1], [None], f"r-{i}", CallRecord("Classify"))
    assert plane.shadows_skipped == 3
    gated.gate.set()
    counts = server.experiments.observer.counts("shadowed")
    await until(lambda: counts.arms["gru"].shadow_predictions == 2)


async def test_no_shadows_at_zero_percent_or_when_paused(server: DigitsServer, digits) -> None:
    images, _ = digits
    plane = server.dataplane
    await server.experiments.create(shadowed(percent=0))
    gated = GatedRunner(plane.runner, "gru")
    plane.runner = gated
    await plane.classify(ModelSelector(experiment="shadowed"), images[:4], [None] * 4, "", CallRecord("Classify"))
    await server.experiments.update(Experiment("shadowed", (), shadow_percent=100, paused=True))
    await plane.classify(ModelSelector(experiment="shadowed"), images[:4], [None] * 4, "", CallRecord("Classify"))
    assert gated.waiting == 0 and not plane._shadows
