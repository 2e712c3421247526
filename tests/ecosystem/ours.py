"""What our own API (digits.v1) answers for the digits the protocol tests send, the shared
inputs, and the fixtures both protocol test modules import (server, digits, pngs, expected)."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.serverproc import start_server

CELLS = ("rnn", "lstm", "gru")
COUNT = 6
# gru has versions 1 and 2 (a copy: same answers); labels point at both.
LABELS = {"stable": 1, "canary": 2}
VERSIONS = {"rnn": [1], "lstm": [1], "gru": [2, 1]}


def png_files(images: np.ndarray) -> list[bytes]:
    """Each 28x28 digit drawn large (4x) as dark ink on white, as a PNG file."""
    from PIL import Image

    files = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(255 - image).resize((112, 112), Image.NEAREST).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def payload(target: str, cells: tuple[str, ...], images: np.ndarray, pngs: list[bytes], **extra: object) -> dict:
    """The JSON input of the ecosystem client scripts."""
    return {
        "target": target,
        "cells": list(cells),
        "images": images.reshape(len(images), -1).tolist(),
        "pngs": [base64.b64encode(p).decode() for p in pngs],
        "labels": [["gru", label] for label in LABELS],
        **extra,
    }


def classify_batch(target: str, model: str, images: list[pb.Image], version: int | None = None) -> dict:
    """digits.v1 ClassifyBatch: {"digits", "probabilities", "version"} or {"code", "message"}."""
    spec = pb.ModelSpec(name=model, version=version) if version is not None else pb.ModelSpec(name=model)
    with grpc.insecure_channel(target) as channel:
        try:
            response = pb_grpc.DigitClassifierStub(channel).ClassifyBatch(
                pb.ClassifyBatchRequest(model_spec=spec, images=images), timeout=60
            )
        except grpc.RpcError as exc:
            return {"code": exc.code().name, "message": exc.details()}
    return {
        "digits": [p.digit for p in response.predictions],
        "probabilities": [list(p.probabilities) for p in response.predictions],
        "version": response.served_by.version,
    }


def pixels(images: np.ndarray) -> list[pb.Image]:
    """Raw uint8 images as digits.v1 Images."""
    return [pb.Image(pixels=image.tobytes()) for image in images]


def encoded(files: list[bytes]) -> list[pb.Image]:
    """Encoded image files as digits.v1 Images."""
    return [pb.Image(encoded=data) for data in files]


def value(record: dict):
    """The value of a call an ecosystem script recorded; fails with the record when it failed."""
    assert record["ok"], record
    return record["value"]


def same_predictions(got: dict, want: dict) -> None:
    """Same digits and (to float tolerance) the same probabilities."""
    assert got["digits"] == want["digits"]
    np.testing.assert_allclose(np.asarray(got["probabilities"]), np.asarray(want["probabilities"]), atol=1e-5)


def served_like(record: dict, want: dict) -> None:
    """A protocol call answered as digits.v1 did: the same predictions, or the same refusal."""
    if "code" in want:
        assert not record["ok"] and record["code"] == want["code"], (record, want)
    else:
        same_predictions(value(record), want)


def failed_with(record: dict, code: str, text: str) -> None:
    """A recorded call failed with `code` and a message containing `text` (e.g. the field at fault)."""
    assert not record["ok"], record
    assert record["code"] == code and text in record["message"], record


@pytest.fixture(scope="module")
def protocol_repo(model_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model repository, model config): the trainer-made cells, plus gru version 2 and gru's labels."""
    root = tmp_path_factory.mktemp("protocols")
    repo = Path(shutil.copytree(model_repo, root / "models"))
    shutil.copytree(repo / "gru" / "1", repo / "gru" / "2")
    config = root / "models.yaml"
    labels = ", ".join(f"{label}: {version}" for label, version in LABELS.items())
    config.write_text(f"models:\n  gru:\n    version_policy: all\n    labels: {{{labels}}}\n")
    return repo, config


@pytest.fixture(scope="module")
def server(protocol_repo: tuple[Path, Path]):
    """A real server over the trainer-made rnn/lstm/gru (see protocol_repo), one per test module."""
    repo, config = protocol_repo
    proc = start_server(
        repo, "--default-model", "lstm", "--model-config", str(config), "--poll-seconds", "0", "--http-port", "0"
    )
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> np.ndarray:
    """COUNT real test digits, uint8 [COUNT,28,28]."""
    with np.load(tiny_npz) as data:
        return data["x_test"][:COUNT]


@pytest.fixture(scope="module")
def pngs(digits: np.ndarray) -> list[bytes]:
    """The same digits as PNG files."""
    return png_files(digits)


@pytest.fixture(scope="module")
def expected(server, digits: np.ndarray) -> dict[str, dict]:
    """digits.v1's answers for the digits, per cell."""
    return {cell: classify_batch(server.target, cell, pixels(digits)) for cell in CELLS}
