"""The walking skeleton end to end: trainer-made SavedModels, a real server process, the real client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits import DigitsClient
from digits.errors import InvalidInputError, ModelNotFoundError
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.serverproc import source_env, start_server

CELLS = ("rnn", "lstm", "gru")


@pytest.fixture(scope="module")
def server(model_repo: Path):
    proc = start_server(model_repo, "--default-model", "lstm")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def sample_digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"], data["y_test"]


def trainer_metadata(model_repo: Path, cell: str) -> dict:
    return json.loads((model_repo / cell / "1" / "metadata.json").read_text())


@pytest.mark.parametrize("cell", CELLS)
def test_each_cell_answers_with_its_own_model(server, sample_digits, cell: str) -> None:
    images, _ = sample_digits
    with DigitsClient(server.target, timeout=30) as client:
        result = client.classify(images[0], model=cell)
    assert result.model == cell and result.version == 1
    assert len(result.probabilities) == 10
    assert abs(sum(result.probabilities) - 1.0) < 1e-4
    assert result.digit == int(np.argmax(result.probabilities))
    assert result.request_id


@pytest.mark.parametrize("cell", CELLS)
def test_served_argmax_equals_the_trainers(server, model_repo: Path, sample_digits, cell: str) -> None:
    import tensorflow as tf

    images, _ = sample_digits
    signature = tf.saved_model.load(str(model_repo / cell / "1")).signatures["serving_default"]
    expected = signature(images=tf.constant(images))["probabilities"].numpy()
    with DigitsClient(server.target, timeout=60) as client:
        batch = client.classify_batch(images, model=cell)
    served = np.array([p.probabilities for p in batch.predictions])
    assert [p.digit for p in batch.predictions] == expected.argmax(axis=1).tolist()
    np.testing.assert_allclose(served, expected, atol=1e-5)


def test_no_model_name_goes_to_the_default_model(server, sample_digits) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        result = client.classify(sample_digits[0][1])
    assert result.model == "lstm"


def test_selector_by_version(server, sample_digits) -> None:
    image = sample_digits[0][2]
    with DigitsClient(server.target, timeout=30) as client:
        assert client.classify(image, model="gru:1").version == 1
        with pytest.raises(ModelNotFoundError, match="version 7"):
            client.classify(image, model="gru:7")


def test_unknown_model_is_not_found_and_names_what_exists(server, sample_digits) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        with pytest.raises(ModelNotFoundError) as error:
            client.classify(sample_digits[0][0], model="transformer")
    assert error.value.code == grpc.StatusCode.NOT_FOUND
    for cell in CELLS:
        assert cell in error.value.details


def test_wrong_byte_length_is_invalid_argument_naming_the_field(server) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=b"\x00" * 783)), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image.pixels" in error.value.details() and "784" in error.value.details()


def test_empty_requests_are_invalid_argument(server) -> None:
    with grpc.insecure_channel(server.target) as channel:
        stub = pb_grpc.DigitClassifierStub(channel)
        with pytest.raises(grpc.RpcError) as single:
            stub.Classify(pb.ClassifyRequest(), timeout=30)
        with pytest.raises(grpc.RpcError) as batch:
            stub.ClassifyBatch(pb.ClassifyBatchRequest(), timeout=30)
    assert single.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "image" in single.value.details()
    assert batch.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "images" in batch.value.details()


def test_client_raises_invalid_input_for_bad_labels(server, sample_digits) -> None:
    images, _ = sample_digits
    with DigitsClient(server.target, timeout=30) as client:
        with pytest.raises(InvalidInputError, match="true_labels"):
            client.classify_batch(images[:3], model="rnn", true_labels=[1, 2])


def test_list_models_shows_every_cell_with_trainer_metadata(server, model_repo: Path) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        models = {m.name: m for m in client.list_models()}
    assert set(models) == set(CELLS)
    assert models["lstm"].is_default and not models["rnn"].is_default
    for cell in CELLS:
        version = models[cell].versions[0]
        assert version.version == 1 and version.state == "AVAILABLE"
        assert version.test_accuracy == pytest.approx(trainer_metadata(model_repo, cell)["test_accuracy"])
        assert version.parameters == trainer_metadata(model_repo, cell)["parameters"]
        assert version.test_ece == pytest.approx(trainer_metadata(model_repo, cell)["test_ece"]) and version.test_ece > 0


@pytest.mark.parametrize("cell", CELLS)
def test_digits_eval_reproduces_the_trainers_accuracy(server, model_repo: Path, tiny_npz: Path, cell: str) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "digits.cli", "eval", "--target", server.target, "--data", str(tiny_npz),
         "--model", cell, "--json"],
        capture_output=True, text=True, env=source_env(), timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    metadata = trainer_metadata(model_repo, cell)
    assert report["n"] == metadata["data"]["n_test"]
    assert abs(report["accuracy"] - metadata["test_accuracy"]) <= 1e-9
    assert report["model"] == cell and report["version"] == 1
