"""Typed results returned by the clients, and their construction from response messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from digits.v1 import digits_pb2

__all__ = [
    "BatchResult",
    "ClassifyResult",
    "FeedbackResult",
    "ModelInfo",
    "Prediction",
    "VersionInfo",
    "batch_result",
    "classify_result",
    "feedback_result",
    "model_info",
    "state_name",
]


def _confidence(digit: int, probabilities: tuple[float, ...]) -> float:
    if 0 <= digit < len(probabilities):
        return probabilities[digit]
    return max(probabilities, default=0.0)


@dataclass(frozen=True)
class Prediction:
    """One image's prediction inside a batch: the digit and the ten probabilities."""

    digit: int
    probabilities: tuple[float, ...]

    @property
    def confidence(self) -> float:
        """The probability of the predicted digit."""
        return _confidence(self.digit, self.probabilities)


@dataclass(frozen=True)
class ClassifyResult:
    """One classified image and what served it (model, version, experiment arm)."""

    digit: int
    probabilities: tuple[float, ...]
    model: str
    version: int
    experiment: str = ""
    arm: str = ""
    request_id: str = ""

    @property
    def confidence(self) -> float:
        """The probability of the predicted digit."""
        return _confidence(self.digit, self.probabilities)


@dataclass(frozen=True)
class BatchResult:
    """A ClassifyBatch answer: predictions in the order of the request's images."""

    predictions: list[Prediction]
    model: str
    version: int
    request_id: str = ""
    experiment: str = ""
    arm: str = ""

    def __len__(self) -> int:
        return len(self.predictions)

    @property
    def digits(self) -> list[int]:
        """The predicted digits, in order."""
        return [p.digit for p in self.predictions]


@dataclass(frozen=True)
class VersionInfo:
    """One version of a model: state (e.g. "AVAILABLE"), labels and trainer metadata."""

    version: int
    state: str
    error: str = ""
    labels: tuple[str, ...] = ()
    cell: str = ""
    recipe: str = ""
    parameters: int = 0
    test_accuracy: float = 0.0
    runtime: str = ""
    tensorflow_version: str = ""
    training_seconds: float = 0.0
    created_at: str = ""
    test_ece: float = 0.0  # expected calibration error of the served probabilities (0: unknown)
    temperature: float = 0.0  # temperature inside the exported graph (0: none)
    # label-free monitoring (docs/monitoring.md): "yes" the version has a reference profile,
    # "no" it has none (or an unusable one), "" the server did not say (monitoring off, admin calls)
    reference: str = ""

    @property
    def available(self) -> bool:
        """True when this version serves requests."""
        return self.state == "AVAILABLE"


@dataclass(frozen=True)
class ModelInfo:
    """A model known to the server, with its versions newest first."""

    name: str
    is_default: bool = False
    versions: list[VersionInfo] = field(default_factory=list)

    def version(self, number: int) -> VersionInfo | None:
        """The given version, or None."""
        return next((v for v in self.versions if v.version == number), None)

    @property
    def available_versions(self) -> list[VersionInfo]:
        """The versions in state AVAILABLE, newest first."""
        return [v for v in self.versions if v.available]


@dataclass(frozen=True)
class FeedbackResult:
    """The answer to a Feedback call: was the earlier prediction right, and who made it."""

    correct: bool
    predicted: int
    model: str
    version: int
    experiment: str = ""
    arm: str = ""


_STATE_PREFIX = "MODEL_STATE_"


def state_name(state: int) -> str:
    """ModelState enum value -> "AVAILABLE", "LOADING", ...; unknown values -> "STATE_<n>"."""
    try:
        name = digits_pb2.ModelState.Name(state)
    except ValueError:
        return f"STATE_{int(state)}"
    return name.removeprefix(_STATE_PREFIX)


def classify_result(response: digits_pb2.ClassifyResponse) -> ClassifyResult:
    """ClassifyResponse -> ClassifyResult."""
    served = response.served_by
    return ClassifyResult(
        digit=int(response.digit),
        probabilities=tuple(float(p) for p in response.probabilities),
        model=served.model,
        version=int(served.version),
        experiment=served.experiment,
        arm=served.arm,
        request_id=response.request_id,
    )


def batch_result(response: digits_pb2.ClassifyBatchResponse) -> BatchResult:
    """ClassifyBatchResponse -> BatchResult."""
    served = response.served_by
    return BatchResult(
        predictions=[
            Prediction(int(p.digit), tuple(float(x) for x in p.probabilities))
            for p in response.predictions
        ],
        model=served.model,
        version=int(served.version),
        request_id=response.request_id,
        experiment=served.experiment,
        arm=served.arm,
    )


def _version_info(status: digits_pb2.ModelVersionStatus) -> VersionInfo:
    info = status.info
    return VersionInfo(
        version=int(status.version),
        state=state_name(status.state),
        error=status.error,
        labels=tuple(status.labels),
        cell=info.cell,
        recipe=info.recipe,
        parameters=int(info.parameters),
        test_accuracy=float(info.test_accuracy),
        runtime=info.runtime,
        tensorflow_version=info.tensorflow_version,
        training_seconds=float(info.training_seconds),
        created_at=info.created_at,
        test_ece=float(info.test_ece),
        temperature=float(info.temperature),
        reference=_reference(status),
    )


def _reference(status: digits_pb2.ModelVersionStatus) -> str:
    if not status.HasField("monitoring"):
        return ""
    return "yes" if status.monitoring.has_reference else "no"


def model_info(status: digits_pb2.ModelStatus) -> ModelInfo:
    """ModelStatus -> ModelInfo (versions in the server's order, newest first)."""
    return ModelInfo(
        name=status.name,
        is_default=bool(status.is_default),
        versions=[_version_info(v) for v in status.versions],
    )


def feedback_result(response: digits_pb2.FeedbackResponse) -> FeedbackResult:
    """FeedbackResponse -> FeedbackResult."""
    served = response.served_by
    return FeedbackResult(
        correct=bool(response.correct),
        predicted=int(response.predicted),
        model=served.model,
        version=int(served.version),
        experiment=served.experiment,
        arm=served.arm,
    )
