"""The unary calls of both clients, written once: which RPC, its request, how its answer converts.

:class:`digits.DigitsClient` and :class:`digits.AsyncDigitsClient` differ only in how they wait
for an answer (blocking or ``await``). Each of their unary methods builds a :class:`Call` here and
runs it: ``return self._run(calls.classify(...), timeout)`` / ``return await self._run(...)``.
A new unary method is added here once and then to each client as a one-line body.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from digits import convert
from digits.convert import ArmLike, ImageLike
from digits.monitoring.report import VersionReport
from digits.results import BatchResult, ClassifyResult, FeedbackResult, ModelInfo
from digits.v1 import digits_pb2

__all__ = [
    "Call",
    "classify",
    "classify_batch",
    "create_experiment",
    "delete_experiment",
    "experiment_report",
    "feedback",
    "list_experiments",
    "list_models",
    "model_status",
    "record_rollout_decision",
    "reload_models",
    "set_version_label",
    "update_experiment",
]

Result = TypeVar("Result")


@dataclass(frozen=True)
class Call(Generic[Result]):
    """One unary RPC: the service ("classifier": DigitClassifier, "admin": DigitsAdmin), the method
    name on its stub, the request message, the conversion of the response message, and call
    metadata of its own (sent after the client's)."""

    service: Literal["classifier", "admin"]
    method: str
    request: Any
    convert: Callable[[Any], Result]
    metadata: tuple[tuple[str, str], ...] = ()


def _models(response: Any) -> list[ModelInfo]:
    return [convert.model_info(m) for m in response.models]


def _same(response: Any) -> Any:
    return response


def classify(
    image: ImageLike,
    model: str | None,
    version: int | None,
    version_label: str | None,
    true_label: int | None,
    request_id: str | None,
    experiment: str | None,
    routing_key: str | None,
) -> Call[ClassifyResult]:
    """Classify one image (see :meth:`digits.DigitsClient.classify`)."""
    spec = convert.model_spec(model, version, version_label, experiment, routing_key)
    request = convert.classify_request(image, spec, true_label, request_id)
    return Call("classifier", "Classify", request, convert.classify_result)


def classify_batch(
    images: Iterable[ImageLike] | np.ndarray,
    model: str | None,
    version: int | None,
    version_label: str | None,
    true_labels: Sequence[int | None] | np.ndarray | None,
    request_id: str | None,
    experiment: str | None,
    routing_key: str | None,
) -> Call[BatchResult]:
    """Classify many images in one call."""
    spec = convert.model_spec(model, version, version_label, experiment, routing_key)
    request = convert.batch_request(images, spec, true_labels, request_id)
    return Call("classifier", "ClassifyBatch", request, convert.batch_result)


def list_models() -> Call[list[ModelInfo]]:
    """Every model the server knows."""
    return Call("classifier", "ListModels", digits_pb2.ListModelsRequest(), _models)


def model_status(name: str) -> Call[ModelInfo]:
    """One model's versions, states and labels."""
    return Call("classifier", "GetModelStatus", digits_pb2.GetModelStatusRequest(name=name), convert.model_info)


def monitoring(name: str | None) -> Call[list[VersionReport]]:
    """Label-free monitoring of every version (or one model's) on the answering server."""
    from digits.monitoring.report import from_status

    if name:
        return Call("classifier", "GetModelStatus", digits_pb2.GetModelStatusRequest(name=name), from_status)
    return Call("classifier", "ListModels", digits_pb2.ListModelsRequest(),
                lambda reply: [r for status in reply.models for r in from_status(status)])


#: The header carrying a Feedback call's request id, which the shipped Envoy hashes to choose the
#: replica (deploy/envoy/envoy.yaml): every feedback for one id reaches the same replica.
REQUEST_ID_HEADER = "digits-request-id"


def feedback(request_id: str, true_label: int, index: int) -> Call[FeedbackResult]:
    """The true digit of an earlier prediction (its request id also in the REQUEST_ID_HEADER header,
    when it can be one: printable ASCII)."""
    request = convert.feedback_request(request_id, true_label, index)
    routing = ((REQUEST_ID_HEADER, request_id),) if request_id.isascii() and request_id.isprintable() else ()
    return Call("classifier", "Feedback", request, convert.feedback_result, routing)


def reload_models() -> Call[list[ModelInfo]]:
    """Admin: rescan the model folder."""
    return Call("admin", "ReloadModels", digits_pb2.ReloadModelsRequest(), _models)


def list_experiments() -> Call[list[digits_pb2.Experiment]]:
    """Every experiment the server runs."""
    return Call("classifier", "ListExperiments", digits_pb2.ListExperimentsRequest(),
                lambda response: list(response.experiments))


def create_experiment(
    experiment: digits_pb2.Experiment | str,
    arms: Iterable[ArmLike] | None,
    shadow_percent: float,
    paused: bool,
) -> Call[digits_pb2.Experiment]:
    """Admin: create an experiment."""
    request = convert.experiment_to_proto(experiment, arms, shadow_percent, paused)
    return Call("admin", "CreateExperiment", request, _same)


def update_experiment(
    experiment: digits_pb2.Experiment | str,
    arms: Iterable[ArmLike] | None,
    shadow_percent: float | None,
    paused: bool | None,
) -> Call[digits_pb2.Experiment]:
    """Admin: change what is given of an experiment (None: unchanged)."""
    request = convert.experiment_change(experiment, arms, shadow_percent, paused)
    return Call("admin", "UpdateExperiment", request, _same)


def delete_experiment(name: str) -> Call[None]:
    """Admin: delete an experiment."""
    return Call("admin", "DeleteExperiment", digits_pb2.DeleteExperimentRequest(name=name), lambda _: None)


def experiment_report(name: str, verdict_basis: str = "") -> Call[digits_pb2.ExperimentReport]:
    """The comparison report of an experiment's arms; verdicts rest on the always-valid tests
    unless ``verdict_basis="fixed-horizon"``."""
    request = digits_pb2.GetExperimentReportRequest(name=name, verdict_basis=verdict_basis)
    return Call("classifier", "GetExperimentReport", request, _same)


def set_version_label(model: str, label: str, version: int) -> Call[ModelInfo]:
    """Admin: point a version label (e.g. ``stable``) of a model at a version."""
    request = digits_pb2.SetVersionLabelRequest(model=model, label=label, version=version)
    return Call("admin", "SetVersionLabel", request, convert.model_info)


def record_rollout_decision(decision: digits_pb2.RolloutDecision) -> Call[digits_pb2.RolloutDecision]:
    """Admin: record a rollout step or decision (logged, counted, listed in the report)."""
    return Call("admin", "RecordRolloutDecision", decision, _same)
