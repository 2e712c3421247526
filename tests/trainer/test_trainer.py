"""Trainer tests: real (tiny) training, real SavedModels, no mocks.

Most tests share the session fixtures of ``tests/conftest.py`` (three cells, one epoch on a
2,000/500-digit slice); the others train one small cell of their own.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import CELLS, MNIST_NPZ, TINY_SEED, TINY_TEST, TINY_TRAIN

pytestmark = pytest.mark.trainer

REPO = Path(__file__).resolve().parents[2]
TRAINER_SRC = REPO / "trainer" / "src"
EXPECTED_PARAMETERS = {"rnn": 6858, "lstm": 24714, "gru": 18954}


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a child process running this checkout's trainer."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(TRAINER_SRC), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.update(extra)
    return env


def train_command() -> list[str]:
    """The installed ``digits-train`` console script, or ``python -m digits_trainer``."""
    script = Path(sys.executable).with_name("digits-train")
    return [str(script)] if script.exists() else [sys.executable, "-m", "digits_trainer"]


def tiny_arrays(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test digits and labels the shared models were measured on."""
    with np.load(tiny_npz) as data:
        return data["x_test"], data["y_test"]


def tmp_leftovers(root: Path) -> list[Path]:
    """Any hidden staging folders left under a model repository."""
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


# --- the shared three-cell repository --------------------------------------------------------


def test_each_cell_is_exported_as_version_1(trained_cells, model_repo: Path) -> None:
    assert [r.cell for r in trained_cells] == list(CELLS)
    for result in trained_cells:
        assert result.version == 1
        assert result.path == model_repo / result.cell / "1"
        assert (result.path / "saved_model.pb").is_file()
        assert (result.path / "variables").is_dir()
        assert (result.path / "metadata.json").is_file()
    assert tmp_leftovers(model_repo) == []


def test_serving_signature_is_the_servers_contract(model_repo: Path, tiny_npz: Path) -> None:
    import tensorflow as tf

    x_test, _ = tiny_arrays(tiny_npz)
    for cell in CELLS:
        signature = tf.saved_model.load(str(model_repo / cell / "1")).signatures["serving_default"]
        args, kwargs = signature.structured_input_signature
        assert args == ()
        assert list(kwargs) == ["images"]
        assert kwargs["images"].dtype == tf.uint8
        assert kwargs["images"].shape.as_list() == [None, 28, 28]
        outputs = signature.structured_outputs
        assert list(outputs) == ["probabilities"]
        assert outputs["probabilities"].dtype == tf.float32
        assert outputs["probabilities"].shape.as_list() == [None, 10]

        probabilities = signature(images=tf.constant(x_test[:7]))["probabilities"].numpy()
        assert probabilities.shape == (7, 10) and probabilities.dtype == np.float32
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_saved_model_matches_keras_softmax(trained_cells, tiny_npz: Path) -> None:
    import tensorflow as tf

    x_test, _ = tiny_arrays(tiny_npz)
    for result in trained_cells:
        signature = tf.saved_model.load(str(result.path)).signatures["serving_default"]
        served = signature(images=tf.constant(x_test))["probabilities"].numpy()
        logits = result.model(x_test.astype(np.float32) / 255.0, training=False)
        expected = tf.nn.softmax(logits, axis=-1).numpy()
        np.testing.assert_allclose(served, expected, atol=1e-5, err_msg=result.cell)


def test_metadata_is_complete(trained_cells, tiny_npz: Path) -> None:
    import keras
    import tensorflow as tf

    from digits_trainer.data import load_npz
    from digits_trainer.metadata import REQUIRED_KEYS

    fingerprint = load_npz(tiny_npz).fingerprint()
    for result in trained_cells:
        meta = json.loads((result.path / "metadata.json").read_text())
        assert meta == result.metadata
        assert set(REQUIRED_KEYS) <= set(meta)
        assert (meta["cell"], meta["recipe"], meta["version"]) == (result.cell, "seed", 1)
        assert meta["parameters"] == EXPECTED_PARAMETERS[result.cell]
        assert meta["parameters"] == result.model.count_params()

        hyper = meta["hyperparameters"]
        assert hyper["optimizer"] == "sgd" and hyper["learning_rate"] == 0.01
        assert hyper["batch_size"] == 64
        assert hyper["epochs_requested"] == 1 and hyper["epochs_run"] == 1
        assert hyper["validation_split"] == 0.0 and hyper["augmentation"] is None

        assert isinstance(meta["test_accuracy"], float) and 0.0 <= meta["test_accuracy"] <= 1.0
        confusion = np.array(meta["confusion_matrix"])
        assert confusion.shape == (10, 10) and confusion.sum() == TINY_TEST
        assert np.trace(confusion) / TINY_TEST == pytest.approx(meta["test_accuracy"], abs=1e-12)
        per_class = meta["per_class_accuracy"]
        assert len(per_class) == 10
        for digit, value in enumerate(per_class):
            assert value == pytest.approx(confusion[digit, digit] / confusion[digit].sum())

        data = meta["data"]
        assert data["fingerprint"] == fingerprint and fingerprint.startswith("sha256:")
        assert (data["n_train"], data["n_test"]) == (TINY_TRAIN, TINY_TEST)
        assert data["source"] == str(tiny_npz)
        assert meta["training_seconds"] > 0
        assert meta["tensorflow_version"] == tf.__version__
        assert meta["keras_version"] == keras.__version__
        assert meta["seed"] == TINY_SEED
        created = datetime.fromisoformat(meta["created_at"])
        assert created.utcoffset() == timezone.utc.utcoffset(None)
        history = meta["history"]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert len(history[key]) == 1, key


def test_test_accuracy_is_what_the_exported_graph_gives_digit_by_digit(
    model_repo: Path, tiny_npz: Path
) -> None:
    """What the server's end-to-end test does: one digit per call, argmax, compare to 1e-9."""
    import tensorflow as tf

    x_test, y_test = tiny_arrays(tiny_npz)
    for cell in CELLS:
        meta = json.loads((model_repo / cell / "1" / "metadata.json").read_text())
        signature = tf.saved_model.load(str(model_repo / cell / "1")).signatures["serving_default"]
        predicted = np.array(
            [int(np.argmax(signature(images=tf.constant(x[None]))["probabilities"][0]))
             for x in x_test]
        )
        accuracy = float(np.mean(predicted == y_test))
        assert abs(accuracy - meta["test_accuracy"]) <= 1e-9, cell
        confusion = np.zeros((10, 10), dtype=int)
        np.add.at(confusion, (y_test, predicted), 1)
        assert confusion.tolist() == meta["confusion_matrix"], cell


# --- runs of their own ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, tiny_npz: Path):
    """The RNN trained twice with the same seed into the same repository."""
    from digits_trainer import train

    out = tmp_path_factory.mktemp("two-runs")
    kwargs = dict(cells=["rnn"], recipe="seed", epochs=1, data=tiny_npz, out=out, seed=7,
                  train_limit=600, test_limit=200, plot=False, quiet=True)
    first, = train(**kwargs)
    second, = train(**kwargs)
    return out, first, second


def test_a_second_run_creates_version_2(two_runs) -> None:
    out, first, second = two_runs
    assert (first.version, second.version) == (1, 2)
    assert second.path == out / "rnn" / "2" and second.metadata["version"] == 2
    assert sorted(p.name for p in (out / "rnn").iterdir()) == ["1", "2"]
    assert tmp_leftovers(out) == []


def test_the_same_seed_reproduces_the_run(two_runs) -> None:
    _, first, second = two_runs
    assert first.metadata["test_accuracy"] == second.metadata["test_accuracy"]
    assert first.metadata["confusion_matrix"] == second.metadata["confusion_matrix"]
    assert first.metadata["history"] == second.metadata["history"]


def test_next_version_ignores_hidden_and_non_integer_folders(tmp_path: Path) -> None:
    from digits_trainer.export import next_version

    cell_dir = tmp_path / "lstm"
    assert next_version(cell_dir) == 1
    for name in ("1", "3", ".tmp-4-abcd", "latest", "10x"):
        (cell_dir / name).mkdir(parents=True)
    (cell_dir / "7").write_text("a file, not a version")
    assert next_version(cell_dir) == 4


def test_distillation_lever_trains_a_teacher_and_records_it(tmp_path: Path, tiny_npz: Path) -> None:
    """The distillation lever (off in the tuned recipe, kept for the ablation) still works end to end."""
    import dataclasses

    from digits_trainer import train
    from digits_trainer.recipes import TUNED

    distilled = dataclasses.replace(TUNED, name="distilled", teacher="cnn", teacher_epochs=1, distill_alpha=0.5,
                                    distill_temperature=4.0)
    result, = train(cells="rnn", recipe=distilled, epochs=1, data=tiny_npz, out=tmp_path, seed=1,
                    train_limit=400, test_limit=100, plot=False, quiet=True)
    distillation = result.metadata["hyperparameters"]["distillation"]
    teacher = distillation["teacher_run"]
    # the documented CNN (conv16-pool-conv32-pool-conv64-dense128-dense10: 229,514 weights), trained
    # the one epoch asked for, and its accuracy measured on exactly the 100 test digits (a count / 100;
    # one epoch on 400 digits is too little to promise more than that)
    assert distillation["teacher"] == "cnn" and teacher["parameters"] == 229_514
    assert teacher["epochs"] == teacher["best_epoch"] == 1
    assert teacher["test_accuracy"] * 100 == pytest.approx(round(teacher["test_accuracy"] * 100))
    assert (distillation["alpha"], distillation["temperature"]) == (0.5, 4.0), distillation


@pytest.fixture(scope="module")
def tuned_run(tmp_path_factory: pytest.TempPathFactory, tiny_npz: Path):
    """The GRU trained with the tuned recipe (3 epochs) on 1,000 digits; measured on 300."""
    from digits_trainer import train

    out = tmp_path_factory.mktemp("tuned")
    result, = train(cells="gru", recipe="tuned", epochs=3, data=tiny_npz, out=out, seed=1,
                    train_limit=1000, test_limit=300, plot=True, quiet=True)
    return out, result


def test_tuned_recipe_trains_on_a_held_out_split_with_its_levers(tuned_run) -> None:
    from digits_trainer.recipes import TUNED

    out, result = tuned_run
    meta = result.metadata
    hyper = meta["hyperparameters"]
    assert meta["recipe"] == "tuned" and hyper["optimizer"] == "adam"
    assert meta["architecture"] == "GRU(64) -> BatchNormalization -> Dense(10)"
    assert meta["parameters"] == EXPECTED_PARAMETERS["gru"]
    assert hyper["epochs_requested"] == 3 and hyper["epochs_run"] == 3  # no early stopping
    assert hyper["validation_split"] == 0.1 and meta["data"]["n_validation"] == 100
    assert meta["data"]["n_fit"] == 900
    assert hyper["augmentation"] == {"random_shift_pixels": TUNED.augment_shift,
                                     "random_rotation_degrees": TUNED.augment_rotation,
                                     "random_scale": TUNED.augment_scale,
                                     "elastic_alpha": TUNED.elastic_alpha,
                                     "elastic_sigma": TUNED.elastic_sigma}
    assert TUNED.augment_rotation > 0 and TUNED.augment_scale > 0 and TUNED.elastic_alpha > 0
    assert hyper["early_stopping"] is None and hyper["weights_kept"] == "last" == TUNED.final_weights
    assert hyper["learning_rate_schedule"]["type"] == "cosine"
    assert hyper["weight_averaging"] is None  # the last weights are served: an average would go unused
    assert hyper["temperature_min_nll_gain"] == TUNED.calibrate_min_gain > 0
    assert hyper["distillation"] is None and TUNED.teacher is None  # measured and left off (docs/training.md)
    assert len(meta["history"]["val_loss"]) == hyper["epochs_run"]
    assert result.curves is not None and result.curves.is_file()
    assert (out / "training-curves.png").read_bytes() == result.curves.read_bytes()
    assert result.reliability is not None and result.reliability.is_file()
    assert (out / "reliability.png").read_bytes() == result.reliability.read_bytes()


def test_a_temperature_that_does_not_pay_is_not_exported(tmp_path: Path, tiny_npz: Path) -> None:
    """With ``calibrate_min_gain`` out of reach the fitted temperature is dropped: T = 1 in the graph."""
    import dataclasses

    from digits_trainer import train
    from digits_trainer.recipes import TUNED

    strict = dataclasses.replace(TUNED, name="strict", calibrate_min_gain=1.0)
    result, = train(cells="rnn", recipe=strict, epochs=1, data=tiny_npz, out=tmp_path, seed=1,
                    train_limit=400, test_limit=100, plot=False, quiet=True)
    cal = result.metadata["calibration"]
    assert result.metadata["temperature"] == cal["temperature"] == 1.0
    assert cal["validation_nll_after"] == cal["validation_nll_before"]
    assert cal["ece"] == pytest.approx(cal["ece_before"], abs=1e-4)


def test_tuned_metadata_carries_the_calibration(tuned_run) -> None:
    from digits_trainer.metadata import REQUIRED_KEYS

    _, result = tuned_run
    meta = json.loads((result.path / "metadata.json").read_text())
    assert meta == result.metadata and set(REQUIRED_KEYS) <= set(meta)
    cal = meta["calibration"]
    assert cal["bins_count"] == 15
    assert meta["temperature"] == cal["temperature"] and cal["temperature"] > 0
    assert meta["test_ece"] == cal["ece"]
    # ECE as defined (sum over bins of |B|/N * |accuracy - confidence|), from the bins recorded, and
    # the bins' accuracy is the model's test accuracy (the temperature never changes an argmax)
    for ece, bins in ((cal["ece"], cal["bins"]), (cal["ece_before"], cal["bins_before"])):
        assert ece == pytest.approx(sum(b["count"] / 300 * abs(b["accuracy"] - b["confidence"]) for b in bins))
        assert sum(b["count"] * b["accuracy"] for b in bins) / 300 == pytest.approx(meta["test_accuracy"])
    assert cal["ece"] > 0 and cal["ece_before"] > 0  # 300 digits never land exactly on the diagonal
    assert cal["validation_nll_after"] <= cal["validation_nll_before"] + 1e-12
    assert "validation" in cal["fitted_on"]
    for key in ("bins", "bins_before"):
        assert len(cal[key]) == 15 and sum(b["count"] for b in cal[key]) == 300
    assert cal["reliability_diagram"] == "assets.extra/reliability.png"
    png = result.path / cal["reliability_diagram"]
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "temperature" in meta["signature"]["preprocessing"]


def test_tuned_graph_serves_the_tempered_softmax_with_the_same_argmax(
    tuned_run, tiny_npz: Path
) -> None:
    import tensorflow as tf

    from digits_trainer.calibration import expected_calibration_error, softmax

    _, result = tuned_run
    x_test, y_test = tiny_arrays(tiny_npz)
    x_test, y_test = x_test[:300], y_test[:300]
    signature = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    served = signature(images=tf.constant(x_test))["probabilities"].numpy()
    logits = result.model(x_test.astype(np.float32) / 255.0, training=False).numpy()
    plain = softmax(logits)
    temperature = result.metadata["temperature"]
    np.testing.assert_allclose(served, softmax(logits, temperature), atol=1e-5)
    assert np.array_equal(served.argmax(axis=1), plain.argmax(axis=1))
    assert result.metadata["calibration"]["ece_before"] == pytest.approx(
        expected_calibration_error(plain, y_test), abs=1e-4)
    assert result.metadata["calibration"]["ece"] == pytest.approx(
        expected_calibration_error(served, y_test), abs=1e-9)


def test_temperature_scaling_keeps_the_argmax_and_lowers_the_ece(
    trained_cells, tiny_npz: Path, tmp_path: Path
) -> None:
    """On trained (1-epoch SGD, badly calibrated) models: fit T on half the digits, export it
    inside the graph, and measure on the other half: same digits predicted, lower ECE."""
    from digits_trainer import export
    from digits_trainer.calibration import expected_calibration_error, fit_temperature
    from digits_trainer.loop import predict_logits

    x_test, y_test = tiny_arrays(tiny_npz)
    half = len(x_test) // 2
    for result in trained_cells:
        temperature = fit_temperature(predict_logits(result.model, x_test[:half]), y_test[:half])
        assert temperature != pytest.approx(1.0, abs=0.05)
        export.write_saved_model(result.model, tmp_path / result.cell, temperature=temperature)
        plain = export.predict_probabilities(export.load_signature(result.path), x_test[half:])
        scaled = export.predict_probabilities(
            export.load_signature(tmp_path / result.cell), x_test[half:])
        assert np.array_equal(scaled.argmax(axis=1), plain.argmax(axis=1)), result.cell
        before = expected_calibration_error(plain, y_test[half:])
        after = expected_calibration_error(scaled, y_test[half:])
        assert after < before, (result.cell, temperature, before, after)


def test_litert_copy_matches_the_calibrated_saved_model(tuned_run, tiny_npz: Path) -> None:
    import tensorflow as tf

    from digits_trainer.litert import TFLITE_PATH

    _, result = tuned_run
    x_test, _ = tiny_arrays(tiny_npz)
    signature = tf.saved_model.load(str(result.path)).signatures["serving_default"]
    interpreter = lite_interpreter(result.path / TFLITE_PATH)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    for image in x_test[:5]:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        lite = interpreter.get_tensor(out["index"])
        served = signature(images=tf.constant(image[None]))["probabilities"].numpy()
        np.testing.assert_allclose(lite, served, atol=1e-5)


def lite_interpreter(path: Path) -> Any:
    """TensorFlow's own tf.lite interpreter, as the server makes it (without the notice that points
    at the ai_edge_litert package, which the project does not use)."""
    import tensorflow as tf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tf.lite.Interpreter(model_path=str(path))


def batch_litert_answers(path: Path, images: np.ndarray) -> np.ndarray:
    """The dynamic-batch flatbuffer's probabilities for `images`, resized to their count."""
    interpreter = lite_interpreter(path)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    assert tuple(inp["shape_signature"]) == (-1, 28, 28) and inp["dtype"] == np.uint8
    interpreter.resize_tensor_input(inp["index"], list(images.shape), strict=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])


def test_dynamic_batch_litert_copy_matches_the_saved_model_for_every_recipe(
    tuned_run, trained_cells, tiny_npz: Path
) -> None:
    """Seed (three cells) and tuned (calibrated GRU) versions: `model_batch.tflite` beside
    `model.tflite`, any batch size, the signature's probabilities."""
    import tensorflow as tf

    from digits_trainer.litert import TFLITE_BATCH_PATH

    x_test, _ = tiny_arrays(tiny_npz)
    for result in (*trained_cells, tuned_run[1]):
        signature = tf.saved_model.load(str(result.path)).signatures["serving_default"]
        for size in (1, 7, 64):
            images = x_test[:size]
            served = signature(images=tf.constant(images))["probabilities"].numpy()
            lite = batch_litert_answers(result.path / TFLITE_BATCH_PATH, images)
            np.testing.assert_allclose(lite, served, atol=1e-5, err_msg=f"{result.cell} batch {size}")


def test_the_seed_recipe_is_the_reference_unchanged(trained_cells) -> None:
    import keras

    from digits_trainer.recipes import SEED, get_recipe
    from digits_trainer.training import make_callbacks, make_optimizer

    assert get_recipe("seed") is SEED
    assert (SEED.optimizer, SEED.learning_rate, SEED.batch_size, SEED.epochs) == (
        "sgd", 0.01, 64, 10)
    assert SEED.validation_split == 0.0 and SEED.lr_schedule == "constant"
    assert SEED.early_stopping_patience is None and SEED.augment_shift == 0
    assert SEED.clipnorm is None and not SEED.custom_loop and not SEED.calibrate
    assert (SEED.augment_rotation, SEED.augment_scale, SEED.label_smoothing) == (0.0, 0.0, 0.0)
    assert SEED.ema_decay is None and SEED.teacher is None
    optimizer = make_optimizer(SEED)
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.01) and optimizer.clipnorm is None
    assert float(optimizer.momentum) == 0.0
    assert make_callbacks(SEED, has_validation=False) == []
    for result in trained_cells:  # exported without a temperature: plain softmax, as before
        meta = result.metadata
        assert meta["temperature"] is None and meta["calibration"]["temperature"] is None
        assert meta["calibration"]["ece"] == pytest.approx(meta["calibration"]["ece_before"],
                                                           abs=1e-4)
        assert meta["hyperparameters"]["loss"] == (
            "sparse_categorical_crossentropy(from_logits=True)")
        assert "distillation" not in meta["hyperparameters"]


def test_ece_matches_a_hand_computation() -> None:
    from digits_trainer.calibration import bin_statistics, expected_calibration_error

    def row(confidence: float, top: int) -> list[float]:
        rest = (1.0 - confidence) / 9
        return [confidence if k == top else rest for k in range(10)]

    # confidences 0.9 (right), 0.9 (wrong), 0.6 (right), 0.3 (right): three bins of 15.
    probabilities = np.array([row(0.9, 3), row(0.9, 5), row(0.6, 1), row(0.3, 7)])
    labels = np.array([3, 4, 1, 7])
    # 2/4 * |0.5 - 0.9| + 1/4 * |1 - 0.6| + 1/4 * |1 - 0.3| = 0.2 + 0.1 + 0.175
    assert expected_calibration_error(probabilities, labels) == pytest.approx(0.475)
    stats = bin_statistics(probabilities, labels)
    assert len(stats) == 15 and [s["count"] for s in stats if s["count"]] == [1, 1, 2]
    assert stats[13]["lower"] == pytest.approx(13 / 15) and stats[13]["count"] == 2
    assert stats[13]["accuracy"] == 0.5 and stats[13]["confidence"] == pytest.approx(0.9)
    perfect = np.array([row(1.0, 2)] * 3)
    assert expected_calibration_error(perfect, np.array([2, 2, 2])) == 0.0


def test_fit_temperature_recovers_a_known_temperature() -> None:
    from digits_trainer.calibration import fit_temperature, negative_log_likelihood, softmax

    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 4.0, size=(20000, 10))
    probabilities = softmax(logits, 2.5)
    labels = np.array([rng.choice(10, p=p) for p in probabilities])
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.05)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(
        logits, labels, 1.0)


def test_shifted_batches_move_digits_without_changing_them(tiny_npz: Path) -> None:
    from digits_trainer.training import batches

    x_test, y_test = tiny_arrays(tiny_npz)
    x, y = x_test[:64], y_test[:64]
    images, labels = next(iter(batches(x, y, batch_size=64, max_shift=2)))
    images = images.numpy()
    assert images.shape == (64, 28, 28) and images.dtype == np.float32
    assert labels.numpy().tolist() == y.tolist()  # no seed: order kept
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / 255.0
    for image, source in zip(images, padded):
        windows = [source[r:r + 28, c:c + 28] for r in range(5) for c in range(5)]
        assert any(np.array_equal(image, w) for w in windows)


# --- command line ---------------------------------------------------------------------------


def test_cli_trains_exports_plots_and_prints_the_table(
    tmp_path: Path, tiny_npz: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from digits_trainer.cli import main

    out = tmp_path / "models"
    code = main(["--cells", "rnn,gru", "--recipe", "seed", "--epochs", "1", "--data",
                 str(tiny_npz), "--out", str(out), "--seed", "0", "--train-limit", "300",
                 "--test-limit", "100"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "cell" in printed and "test acc" in printed
    table_rows = [line.split() for line in printed.splitlines() if line.startswith(("rnn", "gru"))]
    assert [row[:2] for row in table_rows[-2:]] == [["rnn", "seed"], ["gru", "seed"]]
    for cell in ("rnn", "gru"):
        meta = json.loads((out / cell / "1" / "metadata.json").read_text())
        assert f"{meta['test_accuracy']:.4f}" in printed
    assert not (out / "lstm").exists()
    assert (out / "training-curves.png").is_file()
    assert len(list(out.glob("training-curves-*.png"))) == 1


def test_cli_prints_no_tensorflow_warning(tmp_path: Path, tiny_npz: Path) -> None:
    """`digits-train` (as `make demo` runs it) prints no TensorFlow warning: no absl deprecation
    from the LiteRT export, no native start-up banner."""
    env = child_env()
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it
    completed = subprocess.run(
        [*train_command(), "--cells", "rnn", "--recipe", "seed", "--epochs", "1", "--data", str(tiny_npz),
         "--out", str(tmp_path / "models"), "--seed", "0", "--train-limit", "300", "--test-limit", "100"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr
    noise = [line for line in completed.stderr.splitlines()
             if "WARNING:absl" in line or "absl::InitializeLog" in line or "retracing" in line]
    assert not noise, noise


def test_cli_rejects_unknown_cells(capsys: pytest.CaptureFixture[str]) -> None:
    from digits_trainer.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--cells", "rnn,transformer", "--out", "unused"])
    assert exit_info.value.code == 2
    assert "transformer" in capsys.readouterr().err


def test_bad_npz_is_reported_clearly(tmp_path: Path) -> None:
    from digits_trainer.data import DataError, load_npz

    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((4, 28, 27), np.uint8), y_train=np.zeros(4, np.uint8),
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"x_train has shape \(4, 28, 27\)"):
        load_npz(bad)
    with pytest.raises(DataError, match="not found"):
        load_npz(tmp_path / "missing.npz")


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_offline_default_data_falls_back_to_the_shipped_sample(tmp_path: Path) -> None:
    """The console script, default ``--data mnist``, no network: sample used, log line, quiet."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    env = child_env(KERAS_HOME=str(tmp_path / "keras-home"), https_proxy=proxy,
                    HTTPS_PROXY=proxy, http_proxy=proxy, HTTP_PROXY=proxy)
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    out = tmp_path / "models"
    completed = subprocess.run(
        [*train_command(), "--cells", "rnn", "--epochs", "1", "--out", str(out), "--seed", "0",
         "--train-limit", "300", "--test-limit", "100", "--quiet"],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == ""
    assert "MNIST download impossible" in completed.stderr
    assert "falling back to the shipped sample" in completed.stderr
    meta = json.loads((out / "rnn" / "1" / "metadata.json").read_text())
    assert meta["data"]["source"] == "sample" and meta["data"]["fell_back"] is True
    assert (meta["data"]["n_train"], meta["data"]["n_test"]) == (300, 100)
    assert (out / "training-curves.png").is_file()
    assert tmp_leftovers(out) == []


# --- packaging ------------------------------------------------------------------------------


def test_importing_the_package_does_not_import_tensorflow() -> None:
    code = ("import sys, digits_trainer; digits_trainer.train; digits_trainer.RECIPES; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    completed = subprocess.run([sys.executable, "-c", code], env=child_env(),
                               capture_output=True, text=True, timeout=60, check=True)
    assert completed.stdout.strip() == "[]"


def test_the_shipped_sample_is_the_shared_slice() -> None:
    from digits_trainer.data import SAMPLE_PATH, load_npz, load_sample

    sample = load_sample()
    assert SAMPLE_PATH.is_file() and sample.source == "sample"
    assert (sample.n_train, sample.n_test) == (7500, 1500)
    assert set(np.unique(sample.y_test).tolist()) == set(range(10))
    if MNIST_NPZ != SAMPLE_PATH and MNIST_NPZ.name == "mnist-9k.npz":
        assert sample.fingerprint() == load_npz(MNIST_NPZ).fingerprint()
