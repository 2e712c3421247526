"""Which parts the auto runtime builds, with answers unchanged (issue 14 chose them to save memory;
the memory itself is measured by the benchmark harness, not here): no batch-1 XLA bucket when
LiteRT serves single images, and no signature trace unless XLA fails. This checks the parts (the
loaded model's buckets and warm flags), not bytes; it was named test_runtime_memory though it
measured none. On versions without the dynamic-batch LiteRT file (`xla_repo`); with it, see
test_litert_batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits_server.core import loaded_model as loaded_model_module
from digits_server.core.loaded_model import LoadedModel

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"][:20]


def test_litert_serves_batches_until_xla_is_compiled_and_the_signature_is_never_traced(
    xla_repo: Path, digits: np.ndarray
) -> None:
    model = LoadedModel("lstm", 1, xla_repo / "lstm" / "1", runtime="auto", xla_buckets=(1, 4, 16))
    model.load()
    assert model._xla is not None and model._xla.buckets == (4, 16)
    early = model.predict(digits[:3])  # before the compile: LiteRT, image by image
    model.warm_up((1, 8))
    assert model.wait_compiled(timeout=300) and model.runtime == "savedmodel+tflite+xla"
    assert not model._signature_warm
    late = model.predict(digits[:3])  # XLA, bucket 4
    reference = model.reference(digits[:3])
    np.testing.assert_allclose(early, reference, atol=TOLERANCE, rtol=0)
    np.testing.assert_allclose(late, reference, atol=TOLERANCE, rtol=0)
    model.unload()


def test_without_litert_xla_keeps_its_batch_1_bucket_and_the_signature_is_warmed(
    xla_repo: Path, digits: np.ndarray
) -> None:
    model = LoadedModel("rnn", 1, xla_repo / "rnn" / "1", runtime="xla", xla_buckets=(1, 4))
    model.load()
    assert model._xla is not None and model._xla.buckets == (1, 4)
    model.warm_up((1,))
    assert model._signature_warm  # it serves while XLA compiles
    assert model.wait_compiled(timeout=300)
    np.testing.assert_allclose(model.predict(digits[:1]), model.reference(digits[:1]), atol=TOLERANCE, rtol=0)
    model.unload()


def test_when_xla_fails_the_signature_is_warmed_and_serves_batches(
    xla_repo: Path, digits: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: object) -> None:
        raise RuntimeError("no XLA here")

    monkeypatch.setattr(loaded_model_module.XlaBuckets, "compile", broken)
    model = LoadedModel("gru", 1, xla_repo / "gru" / "1", runtime="auto")
    model.load()
    model.warm_up((1, 8))
    assert model.wait_compiled(timeout=300)
    assert model.runtime == "savedmodel+tflite" and model._signature_warm
    np.testing.assert_allclose(model.predict(digits[:5]), model.reference(digits[:5]), atol=TOLERANCE, rtol=0)
    model.unload()
