"""Responses built by codec.py: the ClassifyBatchResponse written in wire format in one numpy pass
is the very message the protobuf constructors build, for any digits and float32 values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from digits.v1 import digits_pb2 as pb
from digits_server.core.domain import BatchOutcome, ServedBy
from digits_server.transport import codec


def constructed(digits: np.ndarray, probabilities: np.ndarray) -> list[pb.Prediction]:
    return [pb.Prediction(digit=d, probabilities=p) for d, p in zip(digits.tolist(), probabilities.tolist())]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 70).flatmap(lambda n: st.tuples(
    hnp.arrays(np.int64, n, elements=st.integers(0, 9)),
    hnp.arrays(np.float32, (n, 10), elements=st.floats(width=32, allow_nan=False)),
)))
def test_wire_built_predictions_equal_constructed_ones(case: tuple[np.ndarray, np.ndarray]) -> None:
    digits, probabilities = case
    response = pb.ClassifyBatchResponse()
    response.MergeFromString(codec.predictions_wire(digits, probabilities))
    assert list(response.predictions) == constructed(digits, probabilities)
    # and it survives a round trip through the wire the way the client reads it
    again = pb.ClassifyBatchResponse.FromString(response.SerializeToString())
    assert [p.digit for p in again.predictions] == digits.tolist()
    assert np.array_equal(np.array([p.probabilities for p in again.predictions], np.float32).reshape(-1, 10),
                          probabilities.reshape(-1, 10))


def test_batch_response_keeps_served_by_and_request_id() -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(10), size=512).astype(np.float32)
    digits = probabilities.argmax(axis=1)
    outcome = BatchOutcome(digits, probabilities, ServedBy("lstm", 3), "req-1")
    response = codec.batch_response(outcome)
    assert response.request_id == "req-1" and response.served_by.model == "lstm" and response.served_by.version == 3
    assert list(response.predictions) == constructed(digits, probabilities)


def test_malformed_outputs_are_refused() -> None:
    with pytest.raises(ValueError, match="predictions"):
        codec.predictions_wire(np.array([10]), np.zeros((1, 10), np.float32))
    with pytest.raises(ValueError, match="predictions"):
        codec.predictions_wire(np.array([1]), np.zeros((1, 11), np.float32))
