"""The Feedback RPC end to end: a real server process with real SavedModels, the real client
library and `digits feedback`, and the live-accuracy counters on /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from digits import DigitsClient
from digits.errors import AlreadyExistsError, InvalidInputError, ModelNotFoundError, NotFoundError, RequestNotFoundError
from digits.v1 import digits_pb2 as pb
from tests.serverproc import source_env, start_server

CAPACITY = 6


@pytest.fixture(scope="module")
def server(model_repo: Path):
    proc = start_server(model_repo, "--feedback-max-predictions", str(CAPACITY))
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:20], data["y_test"][:20]


def samples(server, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of one metric family on the server's /metrics, keyed by its sorted labels."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def feedback_counts(server, model: str) -> tuple[float, float]:
    """(labelled, correct) by the Feedback RPC for a model's version 1."""
    key = (("model", model), ("source", "feedback"), ("traffic", "live"), ("version", "1"))
    return (samples(server, "digits_labelled_predictions_total").get(key, 0.0),
            samples(server, "digits_correct_predictions_total").get(key, 0.0))


def test_feedback_counts_once_against_the_version_that_served(server, digits) -> None:
    images, _ = digits
    before = feedback_counts(server, "gru")
    with DigitsClient(server.target, timeout=30) as client:
        result = client.classify(images[0], model="gru", request_id="feedback-once")
        right = client.feedback("feedback-once", result.digit)
        assert right.correct and right.predicted == result.digit and (right.model, right.version) == ("gru", 1)
        with pytest.raises(AlreadyExistsError, match="received feedback already"):
            client.feedback("feedback-once", (result.digit + 1) % 10)
        wrong = client.classify(images[1], model="gru")
        assert not client.feedback(wrong.request_id, (wrong.digit + 1) % 10).correct
    labelled, correct = feedback_counts(server, "gru")
    assert (labelled - before[0], correct - before[1]) == (2, 1)


def test_batch_images_are_addressed_by_index(server, digits) -> None:
    images, labels = digits
    with DigitsClient(server.target, timeout=30) as client:
        batch = client.classify_batch(images[:3], model="rnn", true_labels=[int(labels[0]), None, None])
        answer = client.feedback(batch.request_id, int(labels[2]), index=2)
        assert answer.predicted == batch.digits[2] and answer.correct == (batch.digits[2] == labels[2])
        with pytest.raises(AlreadyExistsError, match="labelled in its request"):
            client.feedback(batch.request_id, int(labels[0]), index=0)
        with pytest.raises(InvalidInputError, match="index: .* has 3 prediction"):
            client.feedback(batch.request_id, 1, index=3)


def test_unknown_and_forgotten_ids_are_not_found(server, digits) -> None:
    images, _ = digits
    with DigitsClient(server.target, timeout=30) as client:
        with pytest.raises(RequestNotFoundError, match="^NOT_FOUND: request_id: no remembered prediction 'never-sent'") as info:
            client.feedback("never-sent", 3)
        assert not isinstance(info.value, ModelNotFoundError)  # it was a request id, not a model
        first = client.classify(images[2], model="lstm")
        for image in images[3:3 + CAPACITY]:  # push it out of the store
            client.classify(image, model="lstm")
        with pytest.raises(RequestNotFoundError, match=f"request_id: no remembered prediction '{first.request_id}'"):
            client.feedback(first.request_id, first.digit)
        # the other NOT_FOUNDs keep their classes: a model, and something else (an experiment)
        with pytest.raises(ModelNotFoundError, match="no model 'cnn'"):
            client.classify(images[0], model="cnn")
        with pytest.raises(NotFoundError, match="no experiment 'nope'") as other:
            client.experiment_report("nope")
        assert type(other.value) is NotFoundError
        with pytest.raises(grpc.RpcError) as bad_label:  # past the client's own check
            client.stub.Feedback(pb.FeedbackRequest(request_id=first.request_id, true_label=12))
        assert bad_label.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "true_label" in bad_label.value.details()
    held = samples(server, "digits_feedback_store_predictions")
    assert held[()] <= CAPACITY
    assert samples(server, "digits_feedback_store_evictions_total")[(("reason", "capacity"),)] >= 1


def test_the_cli_sends_feedback(server, digits) -> None:
    images, _ = digits
    with DigitsClient(server.target, timeout=30) as client:
        result = client.classify(images[10], model="lstm")
    command = [sys.executable, "-m", "digits.cli", "--target", server.target, "feedback", result.request_id,
               str(result.digit), "--json"]
    completed = subprocess.run(command, capture_output=True, text=True, env=source_env(), timeout=120)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["correct"] is True and report["model"] == "lstm" and report["predicted"] == result.digit
    again = subprocess.run(command, capture_output=True, text=True, env=source_env(), timeout=120)
    assert again.returncode == 1 and "ALREADY_EXISTS" in again.stderr
