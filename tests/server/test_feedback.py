"""The feedback store: lookups, once-only labels, size and age limits, bounded memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from digits_server.core.domain import FeedbackEvent, PredictionEvent, ServedBy
from digits_server.core.errors import AlreadyExists, InvalidInput, NotFound
from digits_server.core.feedback import MAX_REQUEST_ID_CHARS, FeedbackStore
from digits_server.observability.metrics import ServerMetrics

LSTM = ServedBy("lstm", 3)
GRU = ServedBy("gru", 1, "exp", "b")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A FeedbackObserver that keeps what it is told."""

    def __init__(self) -> None:
        self.events: list[FeedbackEvent] = []

    def observe_feedback(self, event: FeedbackEvent) -> None:
        self.events.append(event)


def event(request_id: str, digits: list[int], labels: list[int | None] | None = None, served: ServedBy = LSTM,
          shadow: bool = False) -> PredictionEvent:
    probabilities = np.eye(10, dtype=np.float32)[digits]
    labels = labels if labels is not None else [None] * len(digits)
    return PredictionEvent("Classify", served, request_id, np.array(digits), probabilities, labels, shadow=shadow)


def test_feedback_is_counted_once_against_the_version_that_served() -> None:
    recorder = Recorder()
    store = FeedbackStore(listeners=[recorder])
    store.observe(event("a", [7]))
    store.observe(event("b", [2], served=GRU))
    first = store.give("b", 0, 3)
    assert first == FeedbackEvent(GRU, "b", 0, 2, 3) and not first.correct
    assert store.give("a", 0, 7).correct
    with pytest.raises(AlreadyExists, match="received feedback already"):
        store.give("b", 0, 2)
    assert [e.request_id for e in recorder.events] == ["b", "a"]


def test_unknown_id_is_not_found_and_index_out_of_range_is_invalid() -> None:
    store = FeedbackStore()
    store.observe(event("batch", [1, 2, 3]))
    with pytest.raises(NotFound, match="request_id: no remembered prediction 'nope'"):
        store.give("nope", 0, 1)
    with pytest.raises(InvalidInput, match="index: request 'batch' has 3 prediction"):
        store.give("batch", 3, 1)
    assert store.give("batch", 2, 3).predicted == 3
    assert store.give("batch", 0, 0).predicted == 1


def test_an_image_labelled_in_its_request_takes_no_feedback() -> None:
    store = FeedbackStore()
    store.observe(event("batch", [4, 5], labels=[4, None]))
    with pytest.raises(AlreadyExists, match="labelled in its request"):
        store.give("batch", 0, 4)
    assert store.give("batch", 1, 5).correct


def test_entries_expire_after_the_age_limit() -> None:
    clock = Clock()
    registry = CollectorRegistry()
    store = FeedbackStore(max_age_seconds=60, metrics=ServerMetrics(registry), clock=clock)
    store.observe(event("old", [1, 1]))
    clock.now += 30
    store.observe(event("young", [2]))
    clock.now += 31
    with pytest.raises(NotFound, match="older than 60s"):
        store.give("old", 0, 1)
    assert store.give("young", 0, 2).correct
    assert store.held == 1
    assert registry.get_sample_value("digits_feedback_store_evictions_total", {"reason": "age"}) == 2
    assert registry.get_sample_value("digits_feedback_store_predictions") == 1


def test_the_oldest_predictions_go_first_when_full() -> None:
    registry = CollectorRegistry()
    store = FeedbackStore(max_predictions=4, metrics=ServerMetrics(registry))
    store.observe(event("a", [1, 2]))
    store.observe(event("b", [3]))
    store.observe(event("c", [4, 5]))  # 5 held > 4: "a" goes
    assert store.held == 3
    with pytest.raises(NotFound):
        store.give("a", 0, 1)
    assert store.give("b", 0, 3).correct and store.give("c", 1, 5).correct
    assert registry.get_sample_value("digits_feedback_store_evictions_total", {"reason": "capacity"}) == 2


def test_what_cannot_be_held_is_not_remembered() -> None:
    store = FeedbackStore(max_predictions=2)
    store.observe(event("too-big", [1, 2, 3]))
    store.observe(event("x" * (MAX_REQUEST_ID_CHARS + 1), [1]))
    store.observe(event("mirror", [1], shadow=True))
    store.observe(event("", [1]))
    assert store.held == 0
    disabled = FeedbackStore(max_predictions=0)
    disabled.observe(event("a", [1]))
    with pytest.raises(NotFound):
        disabled.give("a", 0, 1)


def test_a_reused_request_id_names_the_newest_prediction() -> None:
    store = FeedbackStore(max_predictions=10)
    store.observe(event("same", [1]))
    store.give("same", 0, 1)
    store.observe(event("same", [6, 7]))
    assert store.held == 2
    assert store.give("same", 1, 7).predicted == 7


def test_a_failing_listener_does_not_lose_the_feedback() -> None:
    class Broken:
        def observe_feedback(self, event: FeedbackEvent) -> None:
            raise RuntimeError("boom")

    recorder = Recorder()
    store = FeedbackStore(listeners=[Broken(), recorder])
    store.observe(event("a", [1]))
    assert store.give("a", 0, 1).correct
    assert len(recorder.events) == 1


def test_memory_stays_bounded_under_any_traffic() -> None:
    """Once full, ten times its capacity in more traffic leaves its memory where it was."""
    store = FeedbackStore(max_predictions=2_000)
    longest = "x" * (MAX_REQUEST_ID_CHARS - 12)

    def traffic(start: int, units: int) -> list[PredictionEvent]:
        # One unit: two single-image requests with the longest ids, one batch of 8 (10 predictions).
        out = []
        for i in range(start, start + units):
            out += [event(f"{longest}{i:010d}a", [1]), event(f"{longest}{i:010d}b", [2]), event(f"batch-{i}", [3] * 8)]
        return out

    fill, flood = traffic(0, 300), traffic(300, 2_000)
    tracemalloc.start()
    try:
        for prediction in fill:
            store.observe(prediction)
        before = tracemalloc.take_snapshot()
        for prediction in flood:
            store.observe(prediction)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert store.held == 2_000
    assert grown < 20_000, f"the store grew by {grown} bytes while full"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("predict"), st.integers(0, 5), st.integers(1, 4), st.booleans()),
            st.tuples(st.just("feedback"), st.integers(0, 5), st.integers(0, 3), st.integers(0, 9)),
            st.tuples(st.just("wait"), st.integers(0, 40)),
        ),
        max_size=60,
    )
)
def test_nothing_is_ever_counted_twice(operations: list[tuple]) -> None:
    """Random traffic: every accepted feedback names an image that was open and is then closed."""
    clock = Clock()
    recorder = Recorder()
    store = FeedbackStore(max_predictions=8, max_age_seconds=100, listeners=[recorder], clock=clock)
    generation: dict[str, int] = {}
    accepted: set[tuple[str, int, int]] = set()
    for op in operations:
        if op[0] == "predict":
            _, rid, size, labelled = op
            store.observe(event(str(rid), [rid] * size, [rid] * size if labelled else None))
            generation[str(rid)] = generation.get(str(rid), 0) + 1
        elif op[0] == "feedback":
            _, rid, index, label = op
            try:
                result = store.give(str(rid), index, label)
            except (NotFound, AlreadyExists, InvalidInput):
                continue
            key = (str(rid), index, generation[str(rid)])
            assert key not in accepted
            accepted.add(key)
            assert result.predicted == rid
        else:
            clock.now += op[1]
        assert 0 <= store.held <= 8
    assert len(recorder.events) == len(accepted)
