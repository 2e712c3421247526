"""The third tuning round's levers: elastic distortion, random erasing, AdamW, the temperature rule.

Each augmentation test would fail if the lever did nothing (output equal to the input) or if
it broke the batch (shape, dtype, range, labels).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.trainer


def digits(tiny_npz: Path, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training digits as float ``[0, 1]`` and their labels."""
    with np.load(tiny_npz) as data:
        return data["x_train"][:n].astype(np.float32) / 255.0, data["y_train"][:n]


def test_elastic_distortion_moves_ink_but_keeps_the_digit(tiny_npz: Path) -> None:
    import tensorflow as tf

    from digits_trainer.augment import warp_augment

    x, _ = digits(tiny_npz)
    out = warp_augment(tf.constant(x), tf.random.Generator.from_seed(3), max_shift=0.0,
                       max_rotation_degrees=0.0, max_scale=0.0, elastic_alpha=34.0,
                       elastic_sigma=4.0).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    changed = np.abs(out - x).reshape(len(x), -1).max(axis=1) > 0.1
    assert changed.all()  # every digit is distorted ...
    mass = out.reshape(len(x), -1).sum(axis=1) / x.reshape(len(x), -1).sum(axis=1)
    # ... but keeps about its ink (a local stretch or squeeze changes one digit's by up to ~50%)
    assert np.all((mass > 0.5) & (mass < 2.0)) and 0.9 < mass.mean() < 1.1
    # ... and still overlaps its source far more than another digit does
    def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
        return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)

    own, other = cosine(out, x), cosine(out, np.roll(x, 1, axis=0))
    assert own.mean() > 0.5 and np.mean(own > other) > 0.85


def test_warp_without_elastic_is_the_affine_warp(tiny_npz: Path) -> None:
    import tensorflow as tf

    from digits_trainer.augment import affine_augment, warp_augment

    x = tf.constant(digits(tiny_npz)[0])
    identity = warp_augment(x, tf.random.Generator.from_seed(1), max_shift=0.0,
                            max_rotation_degrees=0.0, max_scale=0.0, elastic_alpha=0.0,
                            elastic_sigma=4.0)
    np.testing.assert_array_equal(identity.numpy(), x.numpy())
    settings = {"max_shift": 2.0, "max_rotation_degrees": 8.0, "max_scale": 0.08}
    affine = affine_augment(x, tf.random.Generator.from_seed(5), **settings)
    warped = warp_augment(x, tf.random.Generator.from_seed(5), elastic_alpha=0.0,
                          elastic_sigma=4.0, **settings)
    assert not np.allclose(affine.numpy(), x.numpy())
    np.testing.assert_allclose(warped.numpy(), affine.numpy(), atol=1e-5)


def test_random_erasing_blanks_a_rectangle_in_some_digits(tiny_npz: Path) -> None:
    import tensorflow as tf

    from digits_trainer.augment import random_erase

    x, _ = digits(tiny_npz, 256)
    out = random_erase(tf.constant(x), tf.random.Generator.from_seed(2), probability=0.5).numpy()
    assert out.shape == x.shape and out.dtype == np.float32
    touched = np.any(out != x, axis=(1, 2))
    assert 0.2 < touched.mean() < 0.8
    assert np.all(out[out != x] == 0.0)  # only blanks, nothing else changes
    for image, source in zip(out[touched], x[touched]):
        rows, cols = np.nonzero((image == 0) & (source != 0))
        box = np.zeros_like(image, dtype=bool)
        box[rows.min():rows.max() + 1, cols.min():cols.max() + 1] = True
        assert np.all(image[box] == 0.0)  # the erased pixels form a filled rectangle
    none = random_erase(tf.constant(x), tf.random.Generator.from_seed(2), probability=0.0)
    np.testing.assert_array_equal(none.numpy(), x)


def test_the_loop_trains_with_every_new_lever(tiny_npz: Path) -> None:
    from digits_trainer.loop import fit_loop, predict_logits
    from digits_trainer.model import build_model
    from digits_trainer.recipes import TUNED
    from digits_trainer.training import seed_everything

    with np.load(tiny_npz) as data:
        x, y = data["x_train"][:400], data["y_train"][:400]
    recipe = replace(TUNED, elastic_alpha=34.0, random_erasing=0.5, weight_decay=0.05,
                     label_smoothing=0.1, epochs=2, cell_epochs=())
    seed_everything(0)
    model = build_model("rnn")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history, epochs_run, _, _ = fit_loop(model, recipe, x[:300], y[:300], x[300:], y[300:], seed=0)
    assert epochs_run == 2 and all(np.isfinite(history["loss"]))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(before, model.trainable_weights))
    assert predict_logits(model, x[300:]).shape == (100, 10)


def test_temperature_is_kept_only_when_it_pays() -> None:
    from digits_trainer.calibration import temperature_pays

    assert temperature_pays(0.10, 0.09, 0.02)  # 10% lower NLL
    assert not temperature_pays(0.10, 0.0995, 0.02)  # 0.5%: noise, keep T = 1
    assert temperature_pays(0.10, 0.0995, 0.0)  # rule off: any fitted T is kept


def test_cell_overrides_apply_to_their_cell_and_yield_to_epochs() -> None:
    """The tuned SimpleRNN trains as in tuned-2; ``--epochs`` still applies to every cell."""
    from dataclasses import asdict

    from digits_trainer.recipes import TUNED, TUNED_2

    rnn, gru = TUNED.for_cell("rnn"), TUNED.for_cell("gru")
    differing = {k for k, v in asdict(rnn).items() if asdict(TUNED_2.for_cell("rnn"))[k] != v}
    assert differing == {"name", "description", "calibrate_min_gain"}
    assert gru.epochs == 90 and TUNED.for_cell("lstm").epochs == 70
    assert gru.elastic_alpha > 0 and gru.final_weights == "last"
    short = TUNED.with_overrides(epochs=3)
    assert short.for_cell("rnn").epochs == short.for_cell("gru").epochs == 3
    assert short.for_cell("rnn").ema_decay == TUNED_2.ema_decay
