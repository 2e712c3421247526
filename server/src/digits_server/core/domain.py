"""Transport-free request and result types shared by the data plane and its collaborators."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from digits_server.core.loaded_model import VersionInfo


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
    request_ids: tuple[str, ...] = ()  # a group of one-image requests: request_ids[i] is image i's


@dataclass
class CallRecord:
    """What a call learned while running that its request metrics need (filled as it goes)."""

    method: str
    protocol: str = "digits.v1"
    model: str = ""
    version: str = ""
    experiment: str = ""
    arm: str = ""


@dataclass(frozen=True)
class Timings:
    """Where a request's time went inside the server, in seconds."""

    queue_seconds: float = 0.0
    compute_seconds: float = 0.0
    batch_size: int = 0


@dataclass(frozen=True)
class PredictionEvent:
    """One request's predictions, handed to every observer after the model answered."""

    method: str
    served_by: ServedBy
    request_id: str
    digits: np.ndarray
    probabilities: np.ndarray
    true_labels: list[int | None]
    timings: Timings = field(default_factory=Timings)
    shadow: bool = False  # True for a mirrored (shadow) prediction never returned to a caller
    mirrors: BatchOutcome | None = None  # for a shadow event: the primary outcome it mirrors
    # A group of one-image requests (one stream's messages, `DataPlane.classify_group`): image i
    # is request request_ids[i]'s; `timings` is each request's. Empty for a single request.
    request_ids: tuple[str, ...] = ()
    # The uint8 images [N, 28, 28] the predictions are of (label-free monitoring reads them); None
    # where a caller has none to give.
    images: np.ndarray | None = None

    @property
    def requests(self) -> int:
        """How many requests this event stands for."""
        return len(self.request_ids) or 1

    def one(self, index: int) -> "PredictionEvent":
        """The event of the group's request number `index` alone."""
        return PredictionEvent(
            self.method, self.served_by, self.request_ids[index], self.digits[index: index + 1],
            self.probabilities[index: index + 1], self.true_labels[index: index + 1], self.timings,
            images=None if self.images is None else self.images[index: index + 1],
        )


class PredictionObserver(Protocol):
    """Learns about every prediction: metrics, live accuracy, feedback store, experiment stats.

    An observer whose class sets `observes_groups = True` receives a group's event once; the
    others receive one event per request of the group.
    """

    def observe(self, event: PredictionEvent) -> None:
        """Called on the event loop once per request; must be quick and never raise."""


@dataclass(frozen=True)
class FeedbackEvent:
    """A true digit learned after the fact (Feedback RPC) for one earlier, remembered prediction."""

    served_by: ServedBy
    request_id: str
    index: int
    predicted: int
    true_label: int

    @property
    def correct(self) -> bool:
        """Whether the earlier prediction was right."""
        return self.predicted == self.true_label


class FeedbackObserver(Protocol):
    """Learns about every accepted feedback: live accuracy metrics, experiment statistics."""

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """Called once per accepted feedback; must be quick and never raise."""


@dataclass(frozen=True)
class VersionStatusView:
    """One version of a model as clients see it: lifecycle state, labels, trainer metadata."""

    version: int
    state: str
    error: str
    labels: list[str]
    info: VersionInfo
    runtime: str


@dataclass(frozen=True)
class ModelStatusView:
    """A model and its versions, newest first; `is_default` when it serves requests naming no model."""

    name: str
    versions: list[VersionStatusView]
    is_default: bool
