"""Uploads through the fast uint8 preprocessing classify like the float preprocessing they replaced
(issue 14): real test digits as 200x200 scans with margins, through a real trained model."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from digits import imaging
from digits_server.core.loaded_model import LoadedModel
from tests.scans import float_reference, scanned

COUNT = 200


@pytest.fixture(scope="module")
def model(model_repo: Path) -> LoadedModel:
    loaded = LoadedModel("lstm", 1, model_repo / "lstm" / "1", runtime="savedmodel")
    loaded.load()
    yield loaded
    loaded.unload()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_scanned_digits_classify_as_with_the_float_preprocessing(model: LoadedModel, tiny_npz: Path, fmt: str) -> None:
    with np.load(tiny_npz) as data:
        digits, labels = data["x_test"][:COUNT], data["y_test"][:COUNT]
    rng = np.random.default_rng(200)
    files = []
    for index, digit in enumerate(digits):
        page = scanned(digit, rng, light=index % 4 != 0)
        buffer = io.BytesIO()
        (page.convert("RGB") if fmt == "JPEG" else page).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        files.append(buffer.getvalue())
    fast = np.stack([imaging.preprocess(data) for data in files])
    reference = np.stack([float_reference(data) for data in files])
    difference = np.abs(fast.astype(int) - reference).mean()
    fast_digits = model.predict(fast).argmax(axis=1)
    reference_digits = model.predict(reference).argmax(axis=1)
    same = float(np.mean(fast_digits == reference_digits))
    accuracy, raw_accuracy = (float(np.mean(found == labels)) for found in (fast_digits, model.predict(digits).argmax(axis=1)))
    print(f"{fmt}: mean |fast - float| {difference:.3f}, same digit {same:.1%}, "
          f"accuracy {accuracy:.1%} (float {np.mean(reference_digits == labels):.1%}, raw digits {raw_accuracy:.1%})")
    assert difference < 1.0
    assert same >= 0.98
    if fmt == "PNG":  # 8-bit grayscale: the fast path is the float path, pixel for pixel
        np.testing.assert_array_equal(fast, reference)
