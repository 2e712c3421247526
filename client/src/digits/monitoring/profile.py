"""The reference profile of a model version: what its predictions and inputs look like on
held-out digits, written by the trainer beside metadata.json and read by the server.

Every signal is binned: a signal's `edges` are the inner bin boundaries (value v falls in bin
`searchsorted(edges, v, side="right")`, so there are len(edges) + 1 bins) and `counts` how many
held-out digits fell in each. Predicted classes and confidence use fixed edges; the input
summaries use the reference's deciles plus its minimum and maximum, so a value outside the
range ever seen falls in an outer bin the reference left (nearly) empty.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from digits.monitoring.summaries import SUMMARY_NAMES, summarise

FORMAT = "digits-reference-profile/1"
#: The file beside metadata.json in a version folder.
PROFILE_FILE = "reference_profile.json"
#: Inner edges of the confidence bins (the winning probability), those of the server's
#: digits_prediction_confidence histogram: 12 bins, finer near 1 where trained models live.
CONFIDENCE_EDGES = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)
#: Inner edges of the predicted-class "bins": one bin per digit 0..9.
CLASS_EDGES = tuple(d + 0.5 for d in range(9))
#: The monitored signals, in the column order of `signal_values`.
SIGNALS = ("predicted_class", "confidence", *SUMMARY_NAMES)
#: Quantiles of the reference that bound the input summaries' bins (deciles).
SUMMARY_QUANTILES = tuple(q / 10 for q in range(1, 10))
#: Pseudo-counts pulling a confidence bin's accuracy towards its mean confidence (few digits in a bin).
CALIBRATION_PRIOR = 2.0


class ProfileError(ValueError):
    """A reference profile that cannot be used; the message names the field at fault."""


@dataclass(frozen=True)
class BinnedSignal:
    """One signal's bins on the reference: inner edges and the count of digits in each bin."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]

    def bins(self, values: np.ndarray) -> np.ndarray:
        """The bin index of each value."""
        return np.searchsorted(np.asarray(self.edges), values, side="right")

    @property
    def total(self) -> int:
        """Digits the reference counted."""
        return int(sum(self.counts))


@dataclass(frozen=True)
class CalibrationTable:
    """Accuracy per confidence bin on the reference (CONFIDENCE_EDGES): count, right, sum of confidence."""

    counts: tuple[int, ...]
    correct: tuple[int, ...]
    confidence_sums: tuple[float, ...]
    accuracy: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts, dtype=np.float64)
        edges = np.asarray((0.0, *CONFIDENCE_EDGES, 1.0))
        midpoints = (edges[:-1] + edges[1:]) / 2
        prior = np.where(counts > 0, np.asarray(self.confidence_sums) / np.maximum(counts, 1), midpoints)
        accuracy = (np.asarray(self.correct) + CALIBRATION_PRIOR * prior) / (counts + CALIBRATION_PRIOR)
        object.__setattr__(self, "accuracy", accuracy)

    def calibrated(self, confidence: np.ndarray) -> np.ndarray:
        """The calibrated probability that each prediction is right: its confidence bin's accuracy."""
        return self.accuracy[np.searchsorted(np.asarray(CONFIDENCE_EDGES), confidence, side="right")]


@dataclass(frozen=True)
class ReferenceProfile:
    """A version's reference: signals binned on held-out digits, and the calibration table."""

    held_out: str
    examples: int
    labelled_accuracy: float
    signals: dict[str, BinnedSignal]
    calibration: CalibrationTable

    def to_json(self) -> dict[str, Any]:
        """The JSON document (a dict) written to PROFILE_FILE."""
        return {
            "format": FORMAT,
            "held_out": self.held_out,
            "examples": self.examples,
            "labelled_accuracy": self.labelled_accuracy,
            "signals": {name: {"edges": list(s.edges), "counts": list(s.counts)} for name, s in self.signals.items()},
            "calibration": {
                "edges": list(CONFIDENCE_EDGES),
                "counts": list(self.calibration.counts),
                "correct": list(self.calibration.correct),
                "confidence_sums": list(self.calibration.confidence_sums),
            },
        }

    def dumps(self) -> str:
        """The profile as JSON text."""
        return json.dumps(self.to_json(), indent=1)

    @classmethod
    def from_json(cls, document: Any) -> ReferenceProfile:
        """Read a profile document; ProfileError naming the field when it is not one."""
        doc = _mapping(document, "profile")
        if doc.get("format") != FORMAT:
            raise ProfileError(f"format: expected {FORMAT!r}, got {doc.get('format')!r}")
        signals_doc = _mapping(doc.get("signals"), "signals")
        signals = {}
        for name in SIGNALS:
            entry = _mapping(signals_doc.get(name), f"signals.{name}")
            edges = _numbers(entry.get("edges"), f"signals.{name}.edges", float)
            counts = _numbers(entry.get("counts"), f"signals.{name}.counts", int)
            if len(counts) != len(edges) + 1:
                raise ProfileError(f"signals.{name}.counts: expected {len(edges) + 1} bins, got {len(counts)}")
            if any(b <= a for a, b in itertools.pairwise(edges)):
                raise ProfileError(f"signals.{name}.edges: must increase strictly")
            signals[name] = BinnedSignal(tuple(edges), tuple(counts))
        cal = _mapping(doc.get("calibration"), "calibration")
        if tuple(_numbers(cal.get("edges"), "calibration.edges", float)) != CONFIDENCE_EDGES:
            raise ProfileError(f"calibration.edges: expected {list(CONFIDENCE_EDGES)}")
        bins = len(CONFIDENCE_EDGES) + 1
        columns = {}
        for key, kind in (("counts", int), ("correct", int), ("confidence_sums", float)):
            values = _numbers(cal.get(key), f"calibration.{key}", kind)
            if len(values) != bins:
                raise ProfileError(f"calibration.{key}: expected {bins} bins, got {len(values)}")
            columns[key] = tuple(values)
        if any(c > n for c, n in zip(columns["correct"], columns["counts"])):
            raise ProfileError("calibration.correct: more right than counted in a bin")
        examples = doc.get("examples")
        if not isinstance(examples, int) or examples <= 0:
            raise ProfileError(f"examples: expected a positive integer, got {examples!r}")
        accuracy = doc.get("labelled_accuracy")
        if not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
            raise ProfileError(f"labelled_accuracy: expected a number in [0, 1], got {accuracy!r}")
        return cls(
            held_out=str(doc.get("held_out", "")), examples=examples, labelled_accuracy=float(accuracy),
            signals=signals, calibration=CalibrationTable(**columns),
        )

    @classmethod
    def loads(cls, text: str) -> ReferenceProfile:
        """Read a profile from JSON text; ProfileError when it is not valid JSON or not a profile."""
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ProfileError(f"profile: not JSON ({exc})") from exc
        return cls.from_json(document)


def signal_values(images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """The SIGNALS of each prediction as float64 [N, len(SIGNALS)]: class, confidence, summaries."""
    probabilities = np.asarray(probabilities)
    out = np.empty((len(probabilities), len(SIGNALS)), dtype=np.float64)
    out[:, 0] = probabilities.argmax(axis=1)
    out[:, 1] = probabilities.max(axis=1)
    out[:, 2:] = summarise(images)
    return out


def build_profile(
    images: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, held_out: str
) -> ReferenceProfile:
    """The profile of a version from its predictions on held-out digits (never training digits)."""
    labels = np.asarray(labels).astype(np.int64)
    if len(labels) == 0 or len(labels) != len(probabilities) or len(images) != len(labels):
        raise ValueError("build_profile: images, probabilities and labels must be non-empty and of one length")
    values = signal_values(images, probabilities)
    signals = {}
    for column, name in enumerate(SIGNALS):
        if name == "predicted_class":
            edges = CLASS_EDGES
        elif name == "confidence":
            edges = CONFIDENCE_EDGES
        else:
            column_values = values[:, column]
            inner = np.quantile(column_values, SUMMARY_QUANTILES)
            outer = (column_values.min(), np.nextafter(column_values.max(), np.inf))
            edges = tuple(float(e) for e in np.unique(np.concatenate([inner, outer])))
        bins = np.searchsorted(np.asarray(edges), values[:, column], side="right")
        signals[name] = BinnedSignal(tuple(edges), tuple(int(c) for c in np.bincount(bins, minlength=len(edges) + 1)))
    confidence = values[:, 1]
    confidence_bins = np.searchsorted(np.asarray(CONFIDENCE_EDGES), confidence, side="right")
    right = values[:, 0].astype(np.int64) == labels
    n_bins = len(CONFIDENCE_EDGES) + 1
    table = CalibrationTable(
        counts=tuple(int(c) for c in np.bincount(confidence_bins, minlength=n_bins)),
        correct=tuple(int(c) for c in np.bincount(confidence_bins, weights=right, minlength=n_bins)),
        confidence_sums=tuple(float(s) for s in np.bincount(confidence_bins, weights=confidence, minlength=n_bins)),
    )
    return ReferenceProfile(held_out, len(labels), float(right.mean()), signals, table)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProfileError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _numbers(value: Any, where: str, kind: type) -> list[Any]:
    if not isinstance(value, list):
        raise ProfileError(f"{where}: expected a list, got {type(value).__name__}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)) or (kind is int and not isinstance(item, int)):
            raise ProfileError(f"{where}: expected {kind.__name__} values, got {item!r}")
        if kind is int and item < 0:
            raise ProfileError(f"{where}: counts cannot be negative, got {item}")
        if not np.isfinite(item):
            raise ProfileError(f"{where}: values must be finite, got {item!r}")
    return [kind(item) for item in value]
