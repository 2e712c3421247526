"""The serving runtimes (XLA buckets, LiteRT at batch 1) against the SavedModel, the source of truth."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from digits_server.backends import TFLITE_FILE, parse_buckets
from digits_server.runtime import LoadedModel, check_runtime

CELLS = ("rnn", "lstm", "gru")
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def lite_repo(model_repo: Path) -> Path:
    """The trainer's versions: a SavedModel with its LiteRT export in assets.extra/."""
    for cell in CELLS:
        assert (model_repo / cell / "1" / TFLITE_FILE).is_file()
    return model_repo


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"]


def loaded(path: Path, runtime: str, buckets: tuple[int, ...] = (1, 4, 16)) -> LoadedModel:
    model = LoadedModel(path.parent.name, 1, path, runtime=runtime, xla_buckets=buckets)
    model.load()
    model.warm_up(batch_sizes=(1,))
    assert model.wait_compiled(timeout=300)
    return model


@pytest.mark.parametrize("cell", CELLS)
def test_auto_runtime_matches_the_savedmodel_at_every_batch_size(lite_repo: Path, digits: np.ndarray, cell: str) -> None:
    model = loaded(lite_repo / cell / "1", "auto")
    assert model.runtime == "savedmodel+tflite+xla"
    reference = model.reference(digits)
    singles = np.concatenate([model.predict(digits[i : i + 1]) for i in range(100)])
    np.testing.assert_allclose(singles, reference[:100], atol=TOLERANCE, rtol=0)
    # 3 pads to bucket 4, 16 fits exactly, 37 is cut into chunks of the largest bucket
    start = 0
    for size in (3, 16, 37, 2, 1):
        np.testing.assert_allclose(
            model.predict(digits[start : start + size]), reference[start : start + size], atol=TOLERANCE, rtol=0
        )
        start += size
    model.unload()


def test_savedmodel_runtime_serves_the_signature_itself(lite_repo: Path, digits: np.ndarray) -> None:
    model = loaded(lite_repo / "lstm" / "1", "savedmodel")
    assert model.runtime == "savedmodel"
    np.testing.assert_array_equal(model.predict(digits[:5]), model.reference(digits[:5]))


def test_tflite_runtime_without_the_file_falls_back_to_the_signature(
    lite_repo: Path, digits: np.ndarray, tmp_path: Path
) -> None:
    bare = tmp_path / "gru" / "1"
    shutil.copytree(lite_repo / "gru" / "1", bare)
    (bare / TFLITE_FILE).unlink()
    model = loaded(bare, "tflite")
    assert model.runtime == "savedmodel"
    np.testing.assert_array_equal(model.predict(digits[:1]), model.reference(digits[:1]))


def test_a_tflite_file_of_the_wrong_shape_fails_the_load(lite_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "rnn" / "1"
    shutil.copytree(lite_repo / "rnn" / "1", broken)
    shutil.copy(lite_repo / "lstm" / "1" / TFLITE_FILE, broken / TFLITE_FILE)  # right shape: loads
    LoadedModel("rnn", 1, broken, runtime="tflite").load()
    (broken / TFLITE_FILE).write_bytes(b"not a flatbuffer")
    with pytest.raises(ValueError):
        LoadedModel("rnn", 1, broken, runtime="tflite").load()


def test_settings_are_checked() -> None:
    assert parse_buckets("64, 1,8,8") == (1, 8, 64)
    for bad in ("", "0,4", "a,b"):
        with pytest.raises(ValueError, match="xla_buckets"):
            parse_buckets(bad)
    assert check_runtime("xla") == "xla"
    with pytest.raises(ValueError, match="runtime: expected one of auto, savedmodel, xla, tflite"):
        check_runtime("onnx")
