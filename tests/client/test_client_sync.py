"""DigitsClient against a real grpc.aio fake server: requests built, results typed, metadata sent."""

from __future__ import annotations

import itertools
import time

import grpc
import numpy as np
import pytest

from digits import (
    BatchResult,
    ClassifyResult,
    DeadlineExceededError,
    DigitsClient,
    FeedbackResult,
    InvalidInputError,
    ModelInfo,
    ResourceExhaustedError,
    UnavailableError,
)
from digits.channel import MAX_MESSAGE_BYTES, default_target


def digit_image(first_pixel: int) -> np.ndarray:
    """A 28x28 uint8 image whose fake prediction is first_pixel % 10."""
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = first_pixel
    return image


def test_classify_sends_pixels_and_returns_typed_result(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        result = client.classify(digit_image(7), model="lstm:3", true_label=7, request_id="req-1")
    assert isinstance(result, ClassifyResult)
    assert (result.digit, result.model, result.version, result.request_id) == (7, "lstm", 3, "req-1")
    assert result.probabilities[7] == pytest.approx(0.91) and len(result.probabilities) == 10
    assert result.confidence == pytest.approx(0.91)
    (request,) = servicer.requests("Classify")
    assert request.image.pixels == digit_image(7).tobytes()
    assert request.model_spec.name == "lstm" and request.model_spec.version == 3
    assert request.HasField("true_label") and request.true_label == 7
    assert request.request_id == "req-1"


def test_classify_image_forms(fake_server, servicer, tmp_path):
    np.save(tmp_path / "d.npy", digit_image(4))
    (tmp_path / "d.png").write_bytes(b"123456")
    floats = np.zeros((28, 28), np.float32)
    floats[0, 0] = 1.0
    with DigitsClient(fake_server.target) as client:
        assert client.classify(digit_image(2).tobytes()).digit == 2
        assert client.classify(floats).digit == 9
        assert client.classify(tmp_path / "d.npy").digit == 4
        assert client.classify(str(tmp_path / "d.png")).digit == 6
    kinds = [r.image.WhichOneof("data") for r in servicer.requests("Classify")]
    assert kinds == ["pixels", "float_pixels", "pixels", "encoded"]
    assert servicer.requests("Classify")[3].image.encoded == b"123456"


def test_selectors_reach_the_server(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        default = client.classify(bytes(784))
        labelled = client.classify(bytes(784), model="gru@canary")
        versioned = client.classify(bytes(784), model="rnn", version=2)
        experiment = client.classify(bytes(784), experiment="cells", routing_key="user-9")
    specs = [r.model_spec for r in servicer.requests("Classify")]
    assert specs[0].name == "" and not specs[0].HasField("version")
    assert (specs[1].name, specs[1].version_label) == ("gru", "canary")
    assert (specs[2].name, specs[2].version) == ("rnn", 2)
    assert (specs[3].experiment, specs[3].routing_key, specs[3].name) == ("cells", "user-9", "")
    assert (default.model, default.version) == ("lstm", 7)
    assert (labelled.model, labelled.version) == ("gru", 5)
    assert (versioned.model, versioned.version) == ("rnn", 2)
    assert (experiment.experiment, experiment.arm, experiment.model) == ("cells", "a", "gru")


def test_client_side_invalid_input_sends_nothing(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(InvalidInputError):
            client.classify(np.zeros((27, 28), np.uint8))
        with pytest.raises(InvalidInputError):
            client.classify(bytes(784), model="lstm:x")
    assert servicer.calls == []


def test_classify_batch(fake_server, servicer):
    images = np.stack([digit_image(d) for d in (3, 1, 4, 1, 5)])
    with DigitsClient(fake_server.target) as client:
        batch = client.classify_batch(images, model="gru", true_labels=[3, None, 4, 1, -1], request_id="b7")
    assert isinstance(batch, BatchResult)
    assert batch.digits == [3, 1, 4, 1, 5]
    assert (batch.model, batch.version, batch.request_id) == ("gru", 7, "b7")
    assert batch.predictions[2].confidence == pytest.approx(0.91)
    (request,) = servicer.requests("ClassifyBatch")
    assert list(request.true_labels) == [3, -1, 4, 1, -1]
    assert [img.pixels[0] for img in request.images] == [3, 1, 4, 1, 5]


def test_messages_larger_than_grpc_default_limit(fake_server, servicer):
    # gRPC's default receive limit is 4 MiB; the client raises it deliberately (64 MiB).
    assert MAX_MESSAGE_BYTES == 64 * 1024 * 1024
    images = np.zeros((6000, 28, 28), np.uint8)  # a ~4.7 MB request
    images[:, 0, 0] = np.arange(6000) % 10
    servicer.model_error_text = "x" * (6 * 1024 * 1024)  # a ~6 MB response
    with DigitsClient(fake_server.target) as client:
        batch = client.classify_batch(images)
        models = client.list_models()
    assert batch.digits == [i % 10 for i in range(6000)]
    assert len(models[0].versions[1].error) == 6 * 1024 * 1024


def test_stream_yields_in_order(fake_server, servicer):
    images = (digit_image(i) for i in range(50))
    labels = [i % 10 for i in range(50)]
    with DigitsClient(fake_server.target) as client:
        results = list(client.classify_stream(images, model="lstm@stable", true_labels=labels))
    assert [r.digit for r in results] == [i % 10 for i in range(50)]
    assert all((r.model, r.version) == ("lstm", 5) for r in results)
    messages = servicer.requests("ClassifyStream.message")
    assert [m.image.pixels[0] for m in messages] == list(range(50))
    assert [m.true_label for m in messages] == labels
    assert all(m.model_spec.version_label == "stable" for m in messages)


def test_stream_bad_image_ends_stream_after_good_ones(fake_server):
    images = [digit_image(1), digit_image(2), np.zeros(5, np.uint8), digit_image(3)]
    got = []
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(InvalidInputError, match="784"):
            for result in client.classify_stream(images):
                got.append(result.digit)
    assert got == [1, 2]


def test_stream_early_close_cancels_call(fake_server, servicer):
    endless = (digit_image(i % 10) for i in itertools.count())
    with DigitsClient(fake_server.target) as client:
        stream = client.classify_stream(endless)
        first = [next(stream).digit for _ in range(3)]
        stream.close()
        assert servicer.stream_ended.wait(5), "server stream still running after the client closed"
    assert first == [0, 1, 2]


def test_stream_server_error_mapped(fake_server, servicer):
    servicer.abort_stream_after = 2
    got = []
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(ResourceExhaustedError) as info:
            for result in client.classify_stream(digit_image(i) for i in range(10)):
                got.append(result.digit)
    assert got == [0, 1]
    assert info.value.details == "queue full"


def test_token_sent_as_bearer_metadata(fake_server, servicer):
    with DigitsClient(fake_server.target, token="s3cret\n") as client:
        client.classify(bytes(784))
        client.list_models()
        list(client.classify_stream([bytes(784)]))
        client.reload_models()
    assert [m.get("authorization") for m in servicer.metadata] == ["Bearer s3cret"] * 4


def test_no_token_no_authorization(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        client.classify(bytes(784))
    assert "authorization" not in servicer.metadata[0]


def test_models_and_status(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        models = client.list_models()
        gru = client.model_status("gru")
        reloaded = client.reload_models()
    assert all(isinstance(m, ModelInfo) for m in models)
    assert [(m.name, m.is_default) for m in models] == [("lstm", True), ("gru", False)]
    lstm = models[0]
    assert [(v.version, v.state, v.labels) for v in lstm.versions] == [
        (3, "AVAILABLE", ("stable", "canary")), (2, "FAILED", ())]
    assert lstm.versions[0].test_accuracy == 0.9812 and lstm.versions[0].parameters == 24586
    assert lstm.versions[0].runtime == "savedmodel" and lstm.versions[1].error == "no serving signature"
    assert gru.name == "gru" and gru.versions[0].cell == "gru"
    assert servicer.requests("GetModelStatus")[0].name == "gru"
    assert reloaded == models


def test_feedback(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        right = client.feedback("req-1", 4)
        wrong = client.feedback("req-2", 5, index=3)
    assert isinstance(right, FeedbackResult)
    assert (right.correct, right.predicted, right.model, right.version) == (True, 4, "lstm", 3)
    assert wrong.correct is False
    request = servicer.requests("Feedback")[1]
    assert (request.request_id, request.true_label, request.index) == ("req-2", 5, 3)


def test_experiments_roundtrip(fake_server, servicer):
    with DigitsClient(fake_server.target) as client:
        created = client.create_experiment("cells", [("lstm", 0.5), ("gru@stable", 0.5)], shadow_percent=5)
        assert created.name == "cells" and [a.name for a in created.arms] == ["lstm", "gru"]
        updated = client.update_experiment("cells", [("lstm", 0.9), ("gru@stable", 0.1)], paused=True)
        assert updated.paused and updated.arms[0].weight == 0.9
        assert [e.name for e in client.list_experiments()] == ["cells"]
        report = client.experiment_report("cells")
        assert report.arms[0].requests == 10 and report.experiment.name == "cells"
        client.delete_experiment("cells")
        assert client.list_experiments() == []
    assert servicer.requests("CreateExperiment")[0].arms[1].model.version_label == "stable"


def test_timeout_becomes_deadline_exceeded(fake_server, servicer):
    servicer.delay = 1.0
    with DigitsClient(fake_server.target, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError) as info:
            client.classify(bytes(784))
        assert time.monotonic() - started < 0.9
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        # a per-call timeout overrides the client default
        assert client.classify(bytes(784), timeout=5).digit == 0


def test_unreachable_server(free_port_target):
    with DigitsClient(free_port_target, timeout=2) as client:
        with pytest.raises(UnavailableError):
            client.classify(bytes(784))
        with pytest.raises(UnavailableError, match="no connection"):
            client.wait_for_server(timeout=0.3)


def test_default_target_from_env(monkeypatch):
    monkeypatch.delenv("DIGITS_TARGET", raising=False)
    assert default_target() == "localhost:50051"
    assert DigitsClient().target == "localhost:50051"
    monkeypatch.setenv("DIGITS_TARGET", "10.1.2.3:6000")
    assert DigitsClient().target == "10.1.2.3:6000"
    assert DigitsClient("h:1").target == "h:1"


def test_tls_arguments_validated():
    with pytest.raises(ValueError, match="together"):
        DigitsClient("h:1", tls_cert="a.pem")
