"""digits_trainer: train SimpleRNN/LSTM/GRU MNIST classifiers, export them for serving.

Command line: ``digits-train --cells rnn,lstm,gru --recipe seed|tuned --data SOURCE --out models/``
(``digits-train --help``). Python API (nothing heavy is imported until it is used)::

    import digits_trainer

    results = digits_trainer.train(
        cells=["rnn", "lstm", "gru"],   # or "rnn,lstm,gru"
        recipe="seed",                  # "seed" (the reference) or "tuned"
        epochs=None,                    # None = the recipe's own count
        data="mnist",                   # "mnist" (offline -> shipped sample), "sample", or an .npz
        out="models",                   # repository: <out>/<cell>/<version>/
        seed=0,                         # None = draw one (recorded in the metadata)
        train_limit=None, test_limit=None,  # keep the first N train / test digits
        validation_split=None,          # None = the recipe's; 0 = monitor on the test split
        plot=True,                      # write <out>/training-curves[-<UTC stamp>].png
        quiet=False,                    # True = no Keras progress, only warnings
    )
    for r in results:                   # one TrainResult per cell, in order
        r.cell, r.version, r.path, r.metadata["test_accuracy"], r.model, r.curves

Each ``<out>/<cell>/<version>/`` is a TensorFlow SavedModel whose ``serving_default`` signature
takes ``images`` (uint8 ``[None, 28, 28]``) and returns ``probabilities`` (float32 ``[None, 10]``),
plus a ``metadata.json`` (see :mod:`digits_trainer.metadata`). Versions are written in a hidden
``.tmp-*`` folder and renamed when complete. Lower-level pieces: :func:`train_cell`,
:func:`load_dataset`, :func:`build_model`, :data:`RECIPES`, :func:`next_version`,
:func:`load_signature`.

Modules: ``data`` (sources, fingerprint, offline fallback), ``model`` (architecture),
``recipes`` (seed / tuned as data), ``training`` (fit, seeding, augmentation), ``loop`` (the
tuned recipe's loop: cosine schedule, EMA, SWA; distillation from a CNN teacher as a lever),
``augment`` (in-graph affine and elastic warps, random erasing), ``calibration`` (ECE,
temperature scaling, reliability diagrams), ``export``
(SavedModel, versions, atomic publish, accuracy from the exported graph), ``metadata``,
``report`` (curves and reliability PNGs, comparison table), ``ablation`` (the levers' table,
``python -m digits_trainer.ablation``), ``api``, ``cli``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "train": "api",
    "train_cell": "api",
    "parse_cells": "api",
    "TrainResult": "api",
    "Dataset": "data",
    "DataError": "data",
    "load_dataset": "data",
    "SAMPLE_PATH": "data",
    "build_model": "model",
    "CELLS": "model",
    "Recipe": "recipes",
    "RECIPES": "recipes",
    "get_recipe": "recipes",
    "next_version": "export",
    "load_signature": "export",
    "predict_probabilities": "export",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:
    from .api import TrainResult, parse_cells, train, train_cell
    from .data import SAMPLE_PATH, DataError, Dataset, load_dataset
    from .export import load_signature, next_version, predict_probabilities
    from .model import CELLS, build_model
    from .recipes import RECIPES, Recipe, get_recipe


def __getattr__(name: str) -> Any:
    """Import the public API lazily, so ``import digits_trainer`` stays cheap."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'digits_trainer' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the lazy public names too."""
    return sorted(set(globals()) | set(_EXPORTS))
