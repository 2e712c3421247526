"""Wire <-> domain conversion for digits.v1, in one module. No logic beyond translation and
field-level validation (with messages that name the field)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from digits.experiments.comparison import Comparison
from digits.experiments.report_message import comparison_fields
from digits.v1 import digits_pb2 as pb
from digits_server.core import imaging
from digits_server.core.domain import BatchOutcome, FeedbackEvent, ModelSelector, ModelStatusView, ServedBy
from digits_server.core.errors import InvalidInput
from digits_server.experiments.report import Report, RolloutDecision
from digits_server.experiments.router import Arm, Experiment, ExperimentChange
from digits_server.observability.version_monitor import MonitoringView

# Longest name, label, experiment, routing key or request id accepted (they are echoed in
# responses, error messages and metric labels, and request ids are stored for feedback).
MAX_TEXT_CHARS = 256

STATE_TO_PROTO = {
    "LOADING": pb.MODEL_STATE_LOADING,
    "AVAILABLE": pb.MODEL_STATE_AVAILABLE,
    "UNLOADING": pb.MODEL_STATE_UNLOADING,
    "FAILED": pb.MODEL_STATE_FAILED,
    "END": pb.MODEL_STATE_END,
}


def short_text(value: str, field: str) -> str:
    """A client-chosen string, refused when longer than MAX_TEXT_CHARS."""
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"{field}: {len(value)} characters is more than the limit of {MAX_TEXT_CHARS}")
    return value


_SELECTORS: dict[tuple[bytes, str], ModelSelector] = {}  # valid specs seen, by wire bytes (see selector)
MAX_CACHED_SELECTORS = 4096


def selector(spec: pb.ModelSpec, field: str = "model_spec") -> ModelSelector:
    """A ModelSpec as a domain selector; contradictory combinations are INVALID_ARGUMENT.

    Valid specs are remembered by their wire bytes (a request path's few specs repeat: the
    bytes and one dictionary lookup cost less than the checks and a frozen dataclass)."""
    key = (spec.SerializeToString(), field)
    found = _SELECTORS.get(key)
    if found is not None:
        return found
    made = _selector(spec, field)
    if len(_SELECTORS) >= MAX_CACHED_SELECTORS:
        _SELECTORS.clear()
    _SELECTORS[key] = made
    return made


def _selector(spec: pb.ModelSpec, field: str) -> ModelSelector:
    for name in ("name", "version_label", "experiment", "routing_key"):
        short_text(getattr(spec, name), f"{field}.{name}")
    version = spec.version if spec.HasField("version") else None
    if version is not None and version <= 0:
        raise InvalidInput(f"{field}.version: must be a positive integer, got {version}")
    if version is not None and spec.version_label:
        raise InvalidInput(f"{field}: set version or version_label, not both")
    if spec.experiment and (spec.name or version is not None or spec.version_label):
        raise InvalidInput(f"{field}: an experiment chooses the model; leave name/version/version_label empty")
    return ModelSelector(spec.name, version, spec.version_label, spec.experiment, spec.routing_key)


def image(message: pb.Image, field: str, limits: imaging.ImageLimits = imaging.ImageLimits()) -> np.ndarray:
    """One Image as uint8 [28,28]."""
    kind = message.WhichOneof("data")
    if kind == "pixels":
        return imaging.from_pixels(message.pixels, f"{field}.pixels")
    if kind == "float_pixels":
        return imaging.from_floats(np.asarray(message.float_pixels.values, dtype=np.float32), f"{field}.float_pixels")
    if kind == "encoded":
        return imaging.from_encoded(message.encoded, f"{field}.encoded", limits)
    raise InvalidInput(f"{field}: empty image; set pixels, float_pixels or encoded")


def images(
    messages: Sequence[pb.Image], field: str, limit: int, limits: imaging.ImageLimits = imaging.ImageLimits()
) -> np.ndarray:
    """Many Images as uint8 [N,28,28]."""
    if not messages:
        raise InvalidInput(f"{field}: no images in the request")
    if len(messages) > limit:
        raise InvalidInput(f"{field}: {len(messages)} images is more than the limit of {limit} per request")
    raw = [m.pixels for m in messages]  # fast path: all raw pixels, joined once (~20x cheaper per image)
    if all(len(data) == imaging.PIXELS for data in raw):
        return np.frombuffer(b"".join(raw), dtype=np.uint8).reshape(len(raw), imaging.SIDE, imaging.SIDE)
    return np.stack([image(m, f"{field}[{i}]", limits) for i, m in enumerate(messages)])


def true_labels(values: Sequence[int], count: int, field: str = "true_labels") -> list[int | None]:
    """Per-image true digits (-1 = unknown); empty means all unknown."""
    if not values:
        return [None] * count
    if len(values) != count:
        raise InvalidInput(f"{field}: expected 0 or {count} labels (one per image), got {len(values)}")
    out: list[int | None] = []
    for i, v in enumerate(values):
        if v == -1:
            out.append(None)
        elif 0 <= v <= 9:
            out.append(int(v))
        else:
            raise InvalidInput(f"{field}[{i}]: must be a digit 0-9 or -1 for unknown, got {v}")
    return out


def true_label(request: pb.ClassifyRequest) -> int | None:
    """A ClassifyRequest's optional true digit."""
    if not request.HasField("true_label"):
        return None
    if request.true_label > 9:
        raise InvalidInput(f"true_label: must be a digit 0-9, got {request.true_label}")
    return int(request.true_label)


def feedback_request(request: pb.FeedbackRequest) -> tuple[str, int, int]:
    """A FeedbackRequest as (request_id, index, true_label)."""
    if not request.request_id:
        raise InvalidInput("request_id: required (the request_id of an earlier Classify/ClassifyBatch response)")
    if request.true_label > 9:
        raise InvalidInput(f"true_label: must be a digit 0-9, got {request.true_label}")
    return request.request_id, int(request.index), int(request.true_label)


def feedback_response(event: FeedbackEvent) -> pb.FeedbackResponse:
    """An accepted feedback as a FeedbackResponse."""
    return pb.FeedbackResponse(correct=event.correct, predicted=event.predicted, served_by=served_by(event.served_by))


def served_by(served: ServedBy) -> pb.ServedBy:
    """Domain ServedBy as protobuf."""
    return pb.ServedBy(model=served.model, version=served.version, experiment=served.experiment, arm=served.arm)


_SERVED_BY: dict[ServedBy, pb.ServedBy] = {}  # built once per version and arm (copied into each response)


def classify_response(outcome: BatchOutcome) -> pb.ClassifyResponse:
    """The first prediction of an outcome as a ClassifyResponse."""
    message = _SERVED_BY.get(outcome.served_by)
    if message is None:
        if len(_SERVED_BY) >= MAX_CACHED_SELECTORS:
            _SERVED_BY.clear()
        message = _SERVED_BY[outcome.served_by] = served_by(outcome.served_by)
    return pb.ClassifyResponse(
        digit=int(outcome.digits[0]),
        probabilities=outcome.probabilities[0].tolist(),
        served_by=message,
        request_id=outcome.request_id,
    )


def batch_response(outcome: BatchOutcome) -> pb.ClassifyBatchResponse:
    """Every prediction of an outcome as a ClassifyBatchResponse."""
    response = pb.ClassifyBatchResponse(served_by=served_by(outcome.served_by), request_id=outcome.request_id)
    response.MergeFromString(predictions_wire(outcome.digits, outcome.probabilities))
    return response


PREDICTION_WIRE_BYTES = 46  # field tag + length + Prediction{digit varint, 10 packed floats}


def predictions_wire(digits: np.ndarray, probabilities: np.ndarray) -> bytes:
    """ClassifyBatchResponse.predictions in protobuf wire format, built in one numpy pass: a
    512-image response otherwise costs 512 Prediction constructions in Python (~4 ms)."""
    count = len(digits)
    if probabilities.shape != (count, 10) or (count and not 0 <= int(digits.min()) <= int(digits.max()) <= 9):
        raise ValueError(f"predictions: expected {count} digits 0-9 and {count}x10 probabilities")
    rows = np.empty((count, PREDICTION_WIRE_BYTES), np.uint8)
    rows[:, 0], rows[:, 1] = 0x0A, PREDICTION_WIRE_BYTES - 2  # field 1 (predictions), length-delimited
    rows[:, 2], rows[:, 3] = 0x08, digits  # Prediction.digit: varint, one byte for 0-9
    rows[:, 4], rows[:, 5] = 0x12, 40  # Prediction.probabilities: packed, 10 x float32
    rows[:, 6:] = np.ascontiguousarray(probabilities, dtype="<f4").view(np.uint8).reshape(count, 40)
    return rows.tobytes()


def model_status(
    model: ModelStatusView, monitoring: Callable[[str, int], MonitoringView] | None = None
) -> pb.ModelStatus:
    """A model's versions as a ModelStatus; with `monitoring`, each version's label-free monitoring."""
    versions = [
        pb.ModelVersionStatus(
            version=v.version,
            state=STATE_TO_PROTO.get(v.state, pb.MODEL_STATE_UNSPECIFIED),
            error=v.error,
            labels=v.labels,
            info=pb.ModelInfo(
                cell=v.info.cell,
                recipe=v.info.recipe,
                parameters=v.info.parameters,
                test_accuracy=v.info.test_accuracy,
                tensorflow_version=v.info.tensorflow_version,
                training_seconds=v.info.training_seconds,
                created_at=v.info.created_at,
                runtime=v.runtime,
                test_ece=v.info.test_ece,
                temperature=v.info.temperature,
            ),
            monitoring=version_monitoring(monitoring(model.name, v.version)) if monitoring is not None else None,
        )
        for v in model.versions
    ]
    return pb.ModelStatus(name=model.name, versions=versions, is_default=model.is_default)


def version_monitoring(view: MonitoringView) -> pb.VersionMonitoring:
    """A version's label-free monitoring as a VersionMonitoring message."""
    if not view.has_reference:
        return pb.VersionMonitoring(has_reference=False, reference_error=view.reference_error)
    estimate, labelled = view.estimate, view.labelled
    low, high = estimate.interval() or (0.0, 0.0)
    labelled_low, labelled_high = labelled.interval() or (0.0, 0.0)
    return pb.VersionMonitoring(
        has_reference=True, reference_held_out=view.reference_held_out, reference_accuracy=view.reference_accuracy,
        predictions=estimate.predictions, estimated_accuracy=estimate.accuracy or 0.0,
        estimated_low=low, estimated_high=high,
        labelled=labelled.labelled, labelled_accuracy=labelled.accuracy or 0.0,
        labelled_low=labelled_low, labelled_high=labelled_high, calibration_drift=view.calibration_drift,
        signals=[
            pb.DriftSignal(signal=s.signal, log_statistic=s.log_statistic, log_threshold=s.log_threshold,
                           alarm=s.alarm, alarms=s.alarms, last_alarm_at=s.last_alarm_at, moved=s.moved)
            for s in view.signals
        ],
    )


# --- A/B experiments ---------------------------------------------------------------------------


def experiment(message: pb.Experiment) -> Experiment:
    """An Experiment message as a domain experiment (validated by the router); arm names
    default to their model's name, unset shadow_percent / paused to 0 / False."""
    return Experiment(message.name, _arms(message), message.shadow_percent, message.paused)


def experiment_change(message: pb.Experiment) -> ExperimentChange:
    """An UpdateExperiment request: the arms it lists, shadow_percent / paused only when set."""
    return ExperimentChange(
        message.name,
        _arms(message),
        message.shadow_percent if message.HasField("shadow_percent") else None,
        message.paused if message.HasField("paused") else None,
    )


def _arms(message: pb.Experiment) -> tuple[Arm, ...]:
    arms = []
    for i, arm in enumerate(message.arms):
        spec = arm.model
        version = spec.version if spec.HasField("version") else None
        if spec.experiment or spec.routing_key:
            raise InvalidInput(f"arms[{i}].model: an arm is a model; leave experiment and routing_key empty")
        model = ModelSelector(spec.name, version, spec.version_label)
        arms.append(Arm(arm.name or spec.name, model, arm.weight))
    return tuple(arms)


def experiment_message(value: Experiment) -> pb.Experiment:
    """A domain experiment as an Experiment message."""
    return pb.Experiment(
        name=value.name,
        arms=[
            pb.Arm(name=arm.name, weight=arm.weight, model=pb.ModelSpec(
                name=arm.model.name, version=arm.model.version, version_label=arm.model.version_label))
            for arm in value.arms
        ],
        shadow_percent=value.shadow_percent,
        paused=value.paused,
        created_unix_time=value.created_unix_time,
    )


def experiment_report(report: Report) -> pb.ExperimentReport:
    """A comparison report as an ExperimentReport message."""
    return pb.ExperimentReport(
        experiment=experiment_message(report.experiment),
        latency_source=report.latency_source,
        method=report.method,
        decisions=[rollout_decision_message(d) for d in report.decisions],
        server_id=report.server_id,
        **comparison_fields(Comparison(report.arms, report.pairs, report.guardrails)),
    )


def rollout_decision(message: pb.RolloutDecision) -> RolloutDecision:
    """A RolloutDecision message as the domain value (the server sets the time)."""
    return RolloutDecision(message.experiment, message.candidate_arm, message.decision, message.reason,
                           message.weight, 0.0)


def rollout_decision_message(value: RolloutDecision) -> pb.RolloutDecision:
    """A recorded rollout decision as a RolloutDecision message."""
    return pb.RolloutDecision(experiment=value.experiment, candidate_arm=value.candidate_arm, decision=value.decision,
                              reason=value.reason, weight=value.weight, unix_time=value.unix_time)
