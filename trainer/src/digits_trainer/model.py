"""The reference architecture: one recurrent layer over the image rows, BatchNorm, Dense logits.

The Keras model takes float32 ``[N, 28, 28]`` images already scaled to ``[0, 1]`` (28 timesteps
of 28 features, one row per step) and returns 10 logits. The exported serving graph (see
:mod:`digits_trainer.export`) adds the uint8 -> ``/255`` scaling in front and the softmax behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

#: Recurrent cells this trainer knows, in display order.
CELLS: tuple[str, ...] = ("rnn", "lstm", "gru")

#: Units of the recurrent layer (the reference uses 64 for every cell).
UNITS = 64

#: Image geometry: 28 timesteps (rows) of 28 features (pixels).
TIMESTEPS = 28
FEATURES = 28
NUM_CLASSES = 10

_LAYER_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def check_cell(cell: str) -> str:
    """Return ``cell`` if known, else raise ``ValueError`` naming the known cells."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    return cell


def describe(cell: str) -> str:
    """Human-readable architecture string, e.g. ``LSTM(64) -> BatchNormalization -> Dense(10)``."""
    return f"{_LAYER_NAMES[check_cell(cell)]}({UNITS}) -> BatchNormalization -> Dense({NUM_CLASSES})"


def build_model(cell: str, *, units: int = UNITS) -> keras.Model:
    """Build the (uncompiled) reference model for ``cell``: rows in, 10 logits out."""
    import keras  # lazy: importing Keras pulls in TensorFlow

    layer_class: Any = {
        "rnn": keras.layers.SimpleRNN,
        "lstm": keras.layers.LSTM,
        "gru": keras.layers.GRU,
    }[check_cell(cell)]
    inputs = keras.Input(shape=(TIMESTEPS, FEATURES), name="rows")
    x = layer_class(units, name=cell)(inputs)
    x = keras.layers.BatchNormalization(name="batch_norm")(x)
    logits = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name=f"digits_{cell}")
