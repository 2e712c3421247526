"""The Python API: :func:`train` (several cells, one report) and :func:`train_cell` (one cell)."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import export
from .data import MNIST_SOURCE, Dataset, load_dataset
from .litert import write_reference, write_tflite
from .metadata import build_metadata
from .model import CELLS, build_model, check_cell
from .recipes import Recipe, get_recipe
from .reference import profile_facts, write_reference_profile
from .training import fit, seed_everything

if TYPE_CHECKING:
    import keras

log = logging.getLogger(__name__)

#: Each version's reliability diagram, relative to its folder (TF Serving ignores assets.extra/).
RELIABILITY_PATH = "assets.extra/reliability.png"


@dataclass
class TrainResult:
    """One trained and exported cell.

    ``path`` is the published version folder ``<out>/<cell>/<version>``; ``metadata`` is the
    content of its ``metadata.json``; ``model`` is the trained Keras model (float ``[N, 28, 28]``
    scaled images in, logits out); ``curves`` is the run's training-curves PNG and
    ``reliability`` the run's reliability-diagrams PNG, if drawn.
    """

    cell: str
    version: int
    path: Path
    metadata: dict[str, Any]
    model: keras.Model | None = field(default=None, repr=False, compare=False)
    curves: Path | None = None
    reliability: Path | None = None

    @property
    def test_accuracy(self) -> float:
        """Test accuracy measured through the exported signature."""
        return float(self.metadata["test_accuracy"])


def parse_cells(cells: str | Iterable[str]) -> list[str]:
    """Normalise ``"rnn,lstm"`` or ``["rnn", "lstm"]`` to a de-duplicated, validated list."""
    names = cells.split(",") if isinstance(cells, str) else list(cells)
    result: list[str] = []
    for name in (n.strip().lower() for n in names):
        if name and name not in result:
            result.append(check_cell(name))
    if not result:
        raise ValueError(f"no cells given; expected some of {', '.join(CELLS)}")
    return result


def train_cell(
    cell: str,
    recipe: Recipe,
    data: Dataset,
    out: str | os.PathLike[str],
    *,
    seed: int,
    quiet: bool = False,
    teacher: tuple[keras.Model, dict[str, Any]] | None = None,
) -> TrainResult:
    """Train ``cell`` with ``recipe`` on ``data``, export ``<out>/<cell>/<version>``, measure it.

    The test figures in the metadata are computed by loading the freshly written SavedModel
    and running ``x_test`` through its ``serving_default`` signature (batches of 256). A recipe
    with a teacher uses ``teacher`` (``(model, info)`` from :func:`digits_trainer.loop.train_teacher`,
    shared by :func:`train` across cells) or trains its own. A recipe with ``calibrate`` fits a
    temperature on the held-out validation digits and exports it inside the graph.
    """
    from . import calibration
    from .data import split_validation
    from .loop import predict_logits, train_teacher

    check_cell(cell)
    if recipe.teacher and teacher is None:
        seed_everything(seed)
        teacher = train_teacher(recipe, data, seed=seed, quiet=quiet)
    recipe = recipe.for_cell(cell)
    seed_everything(seed)
    model = build_model(cell)
    if not quiet:
        log.info("training %s with recipe %s (%d digits, seed %d)", cell, recipe.name,
                 data.n_train, seed)
    teacher_model, teacher_info = teacher if teacher is not None else (None, None)
    outcome = fit(model, recipe, data, seed=seed, quiet=quiet, teacher=teacher_model,
                  teacher_info=teacher_info, cell=cell)

    temperature: float | None = None
    fitted: float | None = None
    if recipe.calibrate and recipe.validation_split > 0:
        _, _, x_val, y_val = split_validation(
            data.x_train, data.y_train, recipe.validation_split, seed
        )
        val_logits = predict_logits(model, x_val)
        fitted = temperature = calibration.fit_temperature(val_logits, y_val)
        val_nll = (calibration.negative_log_likelihood(val_logits, y_val, 1.0),
                   calibration.negative_log_likelihood(val_logits, y_val, temperature))
        if not calibration.temperature_pays(*val_nll, recipe.calibrate_min_gain):
            temperature, val_nll = 1.0, (val_nll[0], val_nll[0])  # within noise: keep T = 1
    uncalibrated = calibration.softmax(predict_logits(model, data.x_test))

    cell_dir = Path(out) / cell
    version = export.next_version(cell_dir)
    with export.staging_dir(cell_dir, version) as temp:
        export.write_saved_model(model, temp, temperature=temperature)
        # LiteRT copies the server prefers: batch 1 for single images, dynamic batch (same temperature)
        write_tflite(model, temp, temperature=temperature)
        signature = export.load_signature(temp)
        probabilities = export.predict_probabilities(signature, data.x_test)
        write_reference(temp, data.x_test, probabilities)  # what the LiteRT files must answer
        evaluation = export.evaluate(probabilities.argmax(axis=1), data.y_test)
        trainable = int(sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        cal: dict[str, Any] = {
            "bins_count": calibration.ECE_BINS,
            "temperature": temperature,
            "temperature_fitted": fitted if temperature is not None else None,
            "min_validation_nll_gain": recipe.calibrate_min_gain if temperature is not None else None,
            "fitted_on": (
                f"held-out validation split ({outcome.n_validation} digits), NLL"
                if temperature is not None else None
            ),
            "ece_before": calibration.expected_calibration_error(uncalibrated, data.y_test),
            "ece": calibration.expected_calibration_error(probabilities, data.y_test),
            "validation_nll_before": val_nll[0] if temperature is not None else None,
            "validation_nll_after": val_nll[1] if temperature is not None else None,
            "bins_before": calibration.bin_statistics(uncalibrated, data.y_test),
            "bins": calibration.bin_statistics(probabilities, data.y_test),
            "reliability_diagram": RELIABILITY_PATH,
        }
        metadata = build_metadata(
            cell=cell, recipe=recipe, version=version, parameters=int(model.count_params()),
            trainable_parameters=trainable, evaluation=evaluation, data=data,
            outcome=outcome, seed=seed, calibration=cal,
        )
        profile = write_reference_profile(signature, recipe, data, seed, temp)  # label-free monitoring
        metadata["reference_profile"] = profile_facts(profile)
        calibration.plot_reliability(
            [calibration.panel_from_metadata(metadata)], temp / RELIABILITY_PATH,
            title=f"digits: reliability of {cell} v{version} on the test digits",
        )
        export.write_json(temp / export.METADATA_FILE, metadata)

        def renumber(folder: Path, new_version: int) -> None:
            metadata["version"] = new_version
            export.write_json(folder / export.METADATA_FILE, metadata)

        version, path = export.publish(temp, cell_dir, version, on_renumber=renumber)
    log.info("%s: test accuracy %.4f -> %s", cell, evaluation.accuracy, path)
    return TrainResult(cell=cell, version=version, path=path, metadata=metadata, model=model)


def train(
    cells: str | Iterable[str] = CELLS,
    recipe: str | Recipe = "seed",
    *,
    epochs: int | None = None,
    data: str | os.PathLike[str] | Dataset = MNIST_SOURCE,
    out: str | os.PathLike[str] = "models",
    seed: int | None = None,
    train_limit: int | None = None,
    test_limit: int | None = None,
    validation_split: float | None = None,
    plot: bool = True,
    quiet: bool = False,
) -> list[TrainResult]:
    """Train and export each of ``cells`` with one recipe on one data set; see the package doc.

    ``data`` is ``"mnist"`` (offline fallback to the shipped sample), ``"sample"``, a path to a
    Keras-layout ``.npz`` or a :class:`~digits_trainer.data.Dataset`. ``epochs`` and
    ``validation_split`` override the recipe. ``seed=None`` draws a seed (recorded in the
    metadata, so the run can be repeated). With ``plot`` a training-curves PNG is written in
    ``out``. Returns one :class:`TrainResult` per cell, in order.
    """
    names = parse_cells(cells)
    chosen = recipe if isinstance(recipe, Recipe) else get_recipe(recipe)
    chosen = chosen.with_overrides(epochs=epochs, validation_split=validation_split)
    if seed is None:
        seed = secrets.randbelow(2**31)
        log.info("no --seed given: using seed %d", seed)
    dataset = data if isinstance(data, Dataset) else load_dataset(data, quiet=quiet)
    if train_limit is not None or test_limit is not None:
        dataset = dataset.limited(train_limit, test_limit)
    log.info("data: %s (%d train / %d test digits, %s)", dataset.source, dataset.n_train,
             dataset.n_test, dataset.fingerprint()[:19])

    teacher = None
    if chosen.teacher:
        from .loop import train_teacher

        log.info("training the %s teacher (%d epochs; never exported)", chosen.teacher,
                 chosen.teacher_epochs)
        seed_everything(seed)
        teacher = train_teacher(chosen, dataset, seed=seed, quiet=quiet)
        log.info("teacher: test accuracy %.4f in %.0f s", teacher[1]["test_accuracy"],
                 teacher[1]["seconds"])
    results = [train_cell(name, chosen, dataset, out, seed=seed, quiet=quiet, teacher=teacher)
               for name in names]
    if plot:
        from .report import plot_curves, plot_reliability_report

        curves = plot_curves([r.metadata for r in results], out)
        log.info("training curves: %s", curves)
        reliability = plot_reliability_report([r.metadata for r in results], out)
        log.info("reliability diagrams: %s", reliability)
        for result in results:
            result.curves = curves
            result.reliability = reliability
    return results
