"""Signed request ids: what they carry, what they refuse, and the feedback store taking them."""

from __future__ import annotations

import base64

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from digits_server.core.domain import FeedbackEvent, ServedBy
from digits_server.core.errors import AlreadyExists, ConfigurationError, InvalidInput, NotFound
from digits_server.core.feedback import FeedbackStore
from digits_server.core.request_ids import KEY_ENV, LABELLED_IN_REQUEST, PREFIX, RequestIds, feedback_key, is_signed
from digits_server.observability.metrics import ServerMetrics
from tests.server.test_feedback import Clock, Recorder, event

KEY = b"k" * 32
LSTM = ServedBy("lstm", 3)
ARM = ServedBy("gru", 12345, "cells", "gru-v1")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=600),
    st.data(),
    st.text(max_size=20), st.text(max_size=20), st.integers(1, 2**40),
)
def test_an_id_carries_what_served_and_each_digit(digits, data, experiment, arm, version) -> None:
    labels = data.draw(st.lists(st.one_of(st.none(), st.integers(0, 9)), min_size=len(digits), max_size=len(digits)))
    served = ServedBy("lstm", version, experiment, arm)
    ids = RequestIds(KEY)
    signed = ids.verify(ids.issue(served, np.array(digits), labels))
    assert signed.served_by == served
    assert list(signed.nibbles) == [LABELLED_IN_REQUEST if label is not None else d for d, label in zip(digits, labels)]


def test_replicas_sharing_a_key_accept_each_others_ids_and_others_do_not() -> None:
    made = RequestIds(KEY).issue(ARM, np.array([4, 2]), [None, None])
    assert is_signed(made)
    assert RequestIds(KEY).verify(made).served_by == ARM
    with pytest.raises(InvalidInput, match="request_id: signature does not verify"):
        RequestIds(b"another key of 32 bytes........").verify(made)
    with pytest.raises(InvalidInput, match="request_id: signature does not verify"):
        RequestIds().verify(made)  # no key given: a random one per process


def test_every_altered_byte_is_refused() -> None:
    ids = RequestIds(KEY)
    made = ids.issue(ARM, np.array([1, 2, 3]), [None] * 3)
    raw = base64.urlsafe_b64decode(made[len(PREFIX):] + "=" * (-len(made[len(PREFIX):]) % 4))
    for position in range(len(raw)):
        altered = bytearray(raw)
        altered[position] ^= 0x01
        text = PREFIX + base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(InvalidInput, match="^request_id: "):
            ids.verify(text)
    for broken in (PREFIX, PREFIX + "!!!", PREFIX + "abc", made[:-4], PREFIX + "A" * 9000):
        with pytest.raises(InvalidInput, match="^request_id: "):
            ids.verify(broken)


def test_ids_are_compact() -> None:
    ids = RequestIds(KEY)
    one = ids.issue(LSTM, np.array([7]), [None])
    batch = ids.issue(ServedBy("lstm", 1, "cells", "lstm"), np.arange(512) % 10, [None] * 512)
    assert len(one) <= 56, one
    assert len(batch) <= 410, len(batch)  # 256 bytes of digits + 47 of the rest, base64: 407 characters
    assert one != ids.issue(LSTM, np.array([7]), [None])  # same prediction, same second: another id


def test_the_key_comes_from_a_file_or_the_environment(tmp_path) -> None:
    path = tmp_path / "key"
    path.write_text("0123456789abcdef0123\n")
    assert feedback_key(path, {}) == b"0123456789abcdef0123"
    assert feedback_key(None, {KEY_ENV: "from-the-environment-1"}) == b"from-the-environment-1"
    assert feedback_key(None, {}) is None
    with pytest.raises(ConfigurationError, match="feedback_key_file: .* at least 16"):
        path.write_text("short")
        feedback_key(path, {})
    with pytest.raises(ConfigurationError, match="feedback_key_file: cannot read"):
        feedback_key(tmp_path / "missing", {})


def store(clock: Clock, **kwargs) -> tuple[FeedbackStore, RequestIds, Recorder, ServerMetrics]:
    ids = RequestIds(KEY, clock=clock)
    recorder = Recorder()
    metrics = ServerMetrics(CollectorRegistry())
    return FeedbackStore(listeners=[recorder], metrics=metrics, request_ids=ids, **kwargs), ids, recorder, metrics


def rejected(metrics: ServerMetrics, reason: str) -> float:
    return metrics.registry.get_sample_value("digits_feedback_rejected_total", {"reason": reason}) or 0.0


def test_a_replica_takes_feedback_for_an_id_another_made_once_per_image() -> None:
    clock = Clock()
    other, _, _, _ = store(clock)
    here, _, recorder, metrics = store(clock)
    made = RequestIds(KEY, clock=clock).issue(ARM, np.array([3, 8]), [None, 5])
    assert here.give(made, 0, 3) == FeedbackEvent(ARM, made, 0, 3, 3)
    with pytest.raises(AlreadyExists, match="received feedback already"):
        here.give(made, 0, 3)
    with pytest.raises(AlreadyExists, match="labelled in its request"):
        here.give(made, 1, 5)
    with pytest.raises(InvalidInput, match="index: .* has 2 prediction"):
        here.give(made, 2, 5)
    assert other.give(made, 0, 3).correct  # a duplicate at another replica: counted there once (documented bound)
    assert [e.index for e in recorder.events] == [0]
    assert rejected(metrics, "duplicate") == 2 and rejected(metrics, "invalid_index") == 1
    assert here.held == 0  # nothing remembered per prediction


def test_expired_and_forged_ids_are_refused_and_counted() -> None:
    clock = Clock()
    here, ids, recorder, metrics = store(clock, max_age_seconds=60)
    made = ids.issue(LSTM, np.array([1]), [None])
    clock.now += 61
    with pytest.raises(NotFound, match="request_id: .* expired: issued 61s ago"):
        here.give(made, 0, 1)
    with pytest.raises(InvalidInput, match="request_id: signature does not verify"):
        here.give(made[:-2] + ("AA" if made[-2:] != "AA" else "BB"), 0, 1)
    with pytest.raises(NotFound, match="no remembered prediction"):
        here.give("client-chosen", 0, 1)
    assert (rejected(metrics, "expired"), rejected(metrics, "forged"), rejected(metrics, "unknown")) == (1, 1, 1)
    assert recorder.events == []


def test_the_seen_memory_is_bounded_and_forgets_expired_ids() -> None:
    clock = Clock()
    here, ids, _, _ = store(clock, max_predictions=100, max_age_seconds=60)
    made = [ids.issue(LSTM, np.array([1, 2]), [None, None]) for _ in range(1_000)]
    for request_id in made:
        here.give(request_id, 0, 1)
    for request_id in made[-100:]:  # the newest 100 labels are remembered: a second one is refused
        with pytest.raises(AlreadyExists):
            here.give(request_id, 0, 1)
    assert here.give(made[0], 0, 1).correct  # the oldest was forgotten (the documented bound)
    clock.now += 61
    fresh = [ids.issue(LSTM, np.array([1]), [None]) for _ in range(100)]
    for request_id in fresh:
        here.give(request_id, 0, 1)
    for request_id in fresh:  # the expired ones made room: all 100 new labels are remembered
        with pytest.raises(AlreadyExists):
            here.give(request_id, 0, 1)


def test_client_chosen_ids_are_still_remembered_locally() -> None:
    clock = Clock()
    here, _, recorder, _ = store(clock)
    here.observe(event("mine", [4]))
    assert here.give("mine", 0, 4).correct and here.held == 1


@pytest.mark.parametrize("key", [KEY, b"x" * 16, b"y" * 100])
def test_the_mac_is_standard_hmac_sha256_truncated(key: bytes) -> None:
    import hmac

    ids = RequestIds(key)
    made = ids.issue(ARM, np.array([5]), [None])
    raw = base64.urlsafe_b64decode(made[len(PREFIX):] + "=" * (-len(made[len(PREFIX):]) % 4))
    assert raw[-16:] == hmac.digest(key, raw[:-16], "sha256")[:16]
