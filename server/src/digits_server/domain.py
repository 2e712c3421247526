"""Transport-free request and result types shared by the data plane and its callers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ModelSelector:
    """Which model should serve: name (empty = default), version or label, or an experiment."""

    name: str = ""
    version: int | None = None
    version_label: str = ""
    experiment: str = ""
    routing_key: str = ""


@dataclass(frozen=True)
class ServedBy:
    """The model version (and experiment arm) that actually computed a prediction."""

    model: str
    version: int
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True)
class BatchOutcome:
    """Predictions for a request's images, in order."""

    digits: np.ndarray  # int [N]
    probabilities: np.ndarray  # float32 [N,10]
    served_by: ServedBy
    request_id: str


@dataclass
class CallRecord:
    """What a call learned while running that its metrics need (filled by the data plane)."""

    method: str
    model: str = ""
    version: str = ""
