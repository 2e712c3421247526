"""The standalone LiteRT runtime (core/litert_model.py) in-process: the same answers as the SavedModel
signature at every batch size, which class serves which version, and LiteRT files that disagree with
the SavedModel's reference predictions refused at load (a damaged flatbuffer, another model's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from digits_server.core.litert_model import (
    REFERENCE_FILE,
    LiteRTDisagrees,
    LiteRTModel,
    model_for,
    needs_tensorflow,
    read_reference,
)
from digits_server.core.loaded_model import LoadedModel
from digits_server.core.runtimes import LITE_MAX_BATCH, TFLITE_BATCH_FILE, TFLITE_FILE

CELLS = ("rnn", "lstm", "gru")
TOLERANCE = 1e-5
SIZES = (1, 2, 7, LITE_MAX_BATCH, LITE_MAX_BATCH + 1, 200, 1)


def copy_version(model_repo: Path, tmp_path: Path, cell: str) -> Path:
    """A private copy of `<cell>/1`, safe to damage."""
    target = tmp_path / cell / "1"
    shutil.copytree(model_repo / cell / "1", target)
    return target


def negate_largest_weights(flatbuffer: Path) -> None:
    """Flip the sign of every float of the flatbuffer's largest constant buffer (the recurrent
    kernel): still a valid model of the right shapes, computing something else."""
    from ai_edge_litert import schema_py_generated as schema

    content = bytearray(flatbuffer.read_bytes())
    model = schema.Model.GetRootAsModel(content, 0)
    largest = max((model.Buffers(i).DataAsNumpy() for i in range(model.BuffersLength())
                   if model.Buffers(i).DataLength() > 0), key=len)
    weights = bytes(largest)
    start = content.find(weights)
    assert start > 0 and len(weights) >= 1024, "no inline weights buffer found"
    floats = np.frombuffer(weights, dtype=np.float32) * -1.0
    content[start : start + len(weights)] = floats.astype(np.float32).tobytes()
    flatbuffer.write_bytes(bytes(content))


@pytest.mark.parametrize("cell", CELLS)
def test_litert_answers_like_the_savedmodel_at_every_batch_size(
    model_repo: Path, digits: np.ndarray, cell: str
) -> None:
    path = model_repo / cell / "1"
    model = model_for(cell, 1, path, runtime="litert")
    assert isinstance(model, LiteRTModel)
    model.load()
    model.warm_up()
    assert model.runtime == "litert" and model.cheap_single and model.wait_compiled(0)
    assert model.max_difference <= TOLERANCE  # the load check itself: LiteRT against the stored reference
    signature = LoadedModel(cell, 1, path, runtime="savedmodel")
    signature.load()
    start = 0
    for size in SIZES:
        images = digits[start : start + size]
        np.testing.assert_allclose(model.predict(images), signature.reference(images), atol=TOLERANCE, rtol=0)
        start += size
    assert model.predict(digits[:0]).shape == (0, 10)
    model.unload()
    with pytest.raises(RuntimeError, match="not loaded"):
        model.predict(digits[:1])


def test_the_reference_file_holds_the_savedmodels_own_predictions(model_repo: Path) -> None:
    path = model_repo / "lstm" / "1"
    images, probabilities = read_reference(path / REFERENCE_FILE)
    assert images.dtype == np.uint8 and images.shape == (64, 28, 28) and images.any()
    signature = LoadedModel("lstm", 1, path, runtime="savedmodel")
    signature.load()
    np.testing.assert_allclose(probabilities, signature.reference(images), atol=1e-6, rtol=0)


def test_auto_picks_litert_only_where_the_twin_is_complete(model_repo: Path, tmp_path: Path) -> None:
    complete = model_repo / "gru" / "1"
    assert isinstance(model_for("gru", 1, complete, runtime="auto"), LiteRTModel)
    for runtime in ("savedmodel", "xla", "tflite"):
        assert type(model_for("gru", 1, complete, runtime=runtime)) is LoadedModel
    partial = copy_version(model_repo, tmp_path, "gru")
    (partial / REFERENCE_FILE).unlink()  # exported before reference predictions existed
    fallback = model_for("gru", 1, partial, runtime="litert")
    assert type(fallback) is LoadedModel and fallback.requested_runtime == "auto"  # TensorFlow is installed here
    assert not needs_tensorflow("auto", [complete]) and not needs_tensorflow("litert", [complete])
    assert needs_tensorflow("auto", [complete, partial]) and needs_tensorflow("xla", [complete])


@pytest.mark.parametrize("damaged", [TFLITE_FILE, TFLITE_BATCH_FILE])
def test_a_damaged_flatbuffer_is_refused_at_load(model_repo: Path, tmp_path: Path, damaged: Path) -> None:
    path = copy_version(model_repo, tmp_path, "lstm")
    negate_largest_weights(path / damaged)
    model = LiteRTModel("lstm", 1, path)
    with pytest.raises(LiteRTDisagrees, match=f"refused: {damaged} disagrees with the SavedModel's reference"):
        model.load()
    with pytest.raises(RuntimeError, match="not loaded"):  # nothing half-loaded serves
        model.predict(np.zeros((1, 28, 28), np.uint8))


def test_another_models_flatbuffers_are_refused(model_repo: Path, tmp_path: Path) -> None:
    path = copy_version(model_repo, tmp_path, "rnn")
    for name in (TFLITE_FILE, TFLITE_BATCH_FILE):  # the GRU's files in the RNN's folder: valid, wrong
        shutil.copy(model_repo / "gru" / "1" / name, path / name)
    with pytest.raises(LiteRTDisagrees, match=r"max \|difference\| [0-9.e-]+ over 64 images"):
        LiteRTModel("rnn", 1, path).load()


def test_a_reference_file_that_is_not_one_fails_the_load_naming_it(model_repo: Path, tmp_path: Path) -> None:
    path = copy_version(model_repo, tmp_path, "gru")
    (path / REFERENCE_FILE).write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="litert_reference.npz: not a LiteRT reference file"):
        LiteRTModel("gru", 1, path).load()
    with (path / REFERENCE_FILE).open("wb") as stream:
        np.savez(stream, images=np.zeros((4, 28, 28), np.float32), probabilities=np.zeros((4, 10), np.float32))
    with pytest.raises(ValueError, match="expected images uint8"):
        LiteRTModel("gru", 1, path).load()
