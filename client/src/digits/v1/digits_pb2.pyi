from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_AVAILABLE: _ClassVar[ModelState]
    MODEL_STATE_UNLOADING: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]
    MODEL_STATE_END: _ClassVar[ModelState]
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_AVAILABLE: ModelState
MODEL_STATE_UNLOADING: ModelState
MODEL_STATE_FAILED: ModelState
MODEL_STATE_END: ModelState

class ModelSpec(_message.Message):
    __slots__ = ("name", "version", "version_label", "experiment", "routing_key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    VERSION_LABEL_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ROUTING_KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    version_label: str
    experiment: str
    routing_key: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., version_label: _Optional[str] = ..., experiment: _Optional[str] = ..., routing_key: _Optional[str] = ...) -> None: ...

class Image(_message.Message):
    __slots__ = ("pixels", "float_pixels", "encoded")
    PIXELS_FIELD_NUMBER: _ClassVar[int]
    FLOAT_PIXELS_FIELD_NUMBER: _ClassVar[int]
    ENCODED_FIELD_NUMBER: _ClassVar[int]
    pixels: bytes
    float_pixels: FloatPixels
    encoded: bytes
    def __init__(self, pixels: _Optional[bytes] = ..., float_pixels: _Optional[_Union[FloatPixels, _Mapping]] = ..., encoded: _Optional[bytes] = ...) -> None: ...

class FloatPixels(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class ServedBy(_message.Message):
    __slots__ = ("model", "version", "experiment", "arm")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARM_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: int
    experiment: str
    arm: str
    def __init__(self, model: _Optional[str] = ..., version: _Optional[int] = ..., experiment: _Optional[str] = ..., arm: _Optional[str] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("model_spec", "image", "true_label", "request_id")
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_spec: ModelSpec
    image: Image
    true_label: int
    request_id: str
    def __init__(self, model_spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., image: _Optional[_Union[Image, _Mapping]] = ..., true_label: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("digit", "probabilities", "served_by", "request_id")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    digit: int
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    served_by: ServedBy
    request_id: str
    def __init__(self, digit: _Optional[int] = ..., probabilities: _Optional[_Iterable[float]] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ClassifyBatchRequest(_message.Message):
    __slots__ = ("model_spec", "images", "true_labels", "request_id")
    MODEL_SPEC_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABELS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    model_spec: ModelSpec
    images: _containers.RepeatedCompositeFieldContainer[Image]
    true_labels: _containers.RepeatedScalarFieldContainer[int]
    request_id: str
    def __init__(self, model_spec: _Optional[_Union[ModelSpec, _Mapping]] = ..., images: _Optional[_Iterable[_Union[Image, _Mapping]]] = ..., true_labels: _Optional[_Iterable[int]] = ..., request_id: _Optional[str] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("digit", "probabilities")
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    digit: int
    probabilities: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, digit: _Optional[int] = ..., probabilities: _Optional[_Iterable[float]] = ...) -> None: ...

class ClassifyBatchResponse(_message.Message):
    __slots__ = ("predictions", "served_by", "request_id")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    served_by: ServedBy
    request_id: str
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ...) -> None: ...

class GetModelStatusRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("cell", "recipe", "parameters", "test_accuracy", "tensorflow_version", "training_seconds", "created_at", "runtime", "test_ece", "temperature")
    CELL_FIELD_NUMBER: _ClassVar[int]
    RECIPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    TEST_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TENSORFLOW_VERSION_FIELD_NUMBER: _ClassVar[int]
    TRAINING_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    TEST_ECE_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    cell: str
    recipe: str
    parameters: int
    test_accuracy: float
    tensorflow_version: str
    training_seconds: float
    created_at: str
    runtime: str
    test_ece: float
    temperature: float
    def __init__(self, cell: _Optional[str] = ..., recipe: _Optional[str] = ..., parameters: _Optional[int] = ..., test_accuracy: _Optional[float] = ..., tensorflow_version: _Optional[str] = ..., training_seconds: _Optional[float] = ..., created_at: _Optional[str] = ..., runtime: _Optional[str] = ..., test_ece: _Optional[float] = ..., temperature: _Optional[float] = ...) -> None: ...

class ModelVersionStatus(_message.Message):
    __slots__ = ("version", "state", "error", "labels", "info", "monitoring")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    MONITORING_FIELD_NUMBER: _ClassVar[int]
    version: int
    state: ModelState
    error: str
    labels: _containers.RepeatedScalarFieldContainer[str]
    info: ModelInfo
    monitoring: VersionMonitoring
    def __init__(self, version: _Optional[int] = ..., state: _Optional[_Union[ModelState, str]] = ..., error: _Optional[str] = ..., labels: _Optional[_Iterable[str]] = ..., info: _Optional[_Union[ModelInfo, _Mapping]] = ..., monitoring: _Optional[_Union[VersionMonitoring, _Mapping]] = ...) -> None: ...

class DriftSignal(_message.Message):
    __slots__ = ("signal", "log_statistic", "log_threshold", "alarm", "alarms", "last_alarm_at", "moved")
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    LOG_STATISTIC_FIELD_NUMBER: _ClassVar[int]
    LOG_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    ALARMS_FIELD_NUMBER: _ClassVar[int]
    LAST_ALARM_AT_FIELD_NUMBER: _ClassVar[int]
    MOVED_FIELD_NUMBER: _ClassVar[int]
    signal: str
    log_statistic: float
    log_threshold: float
    alarm: bool
    alarms: int
    last_alarm_at: int
    moved: str
    def __init__(self, signal: _Optional[str] = ..., log_statistic: _Optional[float] = ..., log_threshold: _Optional[float] = ..., alarm: _Optional[bool] = ..., alarms: _Optional[int] = ..., last_alarm_at: _Optional[int] = ..., moved: _Optional[str] = ...) -> None: ...

class VersionMonitoring(_message.Message):
    __slots__ = ("has_reference", "reference_held_out", "reference_accuracy", "predictions", "estimated_accuracy", "estimated_low", "estimated_high", "labelled", "labelled_accuracy", "labelled_low", "labelled_high", "calibration_drift", "signals", "reference_error")
    HAS_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_HELD_OUT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_LOW_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_HIGH_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    LABELLED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LABELLED_LOW_FIELD_NUMBER: _ClassVar[int]
    LABELLED_HIGH_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_DRIFT_FIELD_NUMBER: _ClassVar[int]
    SIGNALS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_ERROR_FIELD_NUMBER: _ClassVar[int]
    has_reference: bool
    reference_held_out: str
    reference_accuracy: float
    predictions: int
    estimated_accuracy: float
    estimated_low: float
    estimated_high: float
    labelled: int
    labelled_accuracy: float
    labelled_low: float
    labelled_high: float
    calibration_drift: bool
    signals: _containers.RepeatedCompositeFieldContainer[DriftSignal]
    reference_error: str
    def __init__(self, has_reference: _Optional[bool] = ..., reference_held_out: _Optional[str] = ..., reference_accuracy: _Optional[float] = ..., predictions: _Optional[int] = ..., estimated_accuracy: _Optional[float] = ..., estimated_low: _Optional[float] = ..., estimated_high: _Optional[float] = ..., labelled: _Optional[int] = ..., labelled_accuracy: _Optional[float] = ..., labelled_low: _Optional[float] = ..., labelled_high: _Optional[float] = ..., calibration_drift: _Optional[bool] = ..., signals: _Optional[_Iterable[_Union[DriftSignal, _Mapping]]] = ..., reference_error: _Optional[str] = ...) -> None: ...

class ModelStatus(_message.Message):
    __slots__ = ("name", "versions", "is_default")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    name: str
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersionStatus]
    is_default: bool
    def __init__(self, name: _Optional[str] = ..., versions: _Optional[_Iterable[_Union[ModelVersionStatus, _Mapping]]] = ..., is_default: _Optional[bool] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("request_id", "true_label", "index")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TRUE_LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    true_label: int
    index: int
    def __init__(self, request_id: _Optional[str] = ..., true_label: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("correct", "predicted", "served_by")
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_FIELD_NUMBER: _ClassVar[int]
    SERVED_BY_FIELD_NUMBER: _ClassVar[int]
    correct: bool
    predicted: int
    served_by: ServedBy
    def __init__(self, correct: _Optional[bool] = ..., predicted: _Optional[int] = ..., served_by: _Optional[_Union[ServedBy, _Mapping]] = ...) -> None: ...

class ReloadModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelStatus]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelStatus, _Mapping]]] = ...) -> None: ...

class Arm(_message.Message):
    __slots__ = ("name", "model", "weight")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: ModelSpec
    weight: float
    def __init__(self, name: _Optional[str] = ..., model: _Optional[_Union[ModelSpec, _Mapping]] = ..., weight: _Optional[float] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("name", "arms", "shadow_percent", "paused", "created_unix_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_PERCENT_FIELD_NUMBER: _ClassVar[int]
    PAUSED_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    arms: _containers.RepeatedCompositeFieldContainer[Arm]
    shadow_percent: float
    paused: bool
    created_unix_time: float
    def __init__(self, name: _Optional[str] = ..., arms: _Optional[_Iterable[_Union[Arm, _Mapping]]] = ..., shadow_percent: _Optional[float] = ..., paused: _Optional[bool] = ..., created_unix_time: _Optional[float] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments",)
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ...) -> None: ...

class DeleteExperimentRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteExperimentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetExperimentReportRequest(_message.Message):
    __slots__ = ("name", "verdict_basis")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERDICT_BASIS_FIELD_NUMBER: _ClassVar[int]
    name: str
    verdict_basis: str
    def __init__(self, name: _Optional[str] = ..., verdict_basis: _Optional[str] = ...) -> None: ...

class SetVersionLabelRequest(_message.Message):
    __slots__ = ("model", "label", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    label: str
    version: int
    def __init__(self, model: _Optional[str] = ..., label: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RolloutDecision(_message.Message):
    __slots__ = ("experiment", "candidate_arm", "decision", "reason", "weight", "unix_time")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_ARM_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    UNIX_TIME_FIELD_NUMBER: _ClassVar[int]
    experiment: str
    candidate_arm: str
    decision: str
    reason: str
    weight: float
    unix_time: float
    def __init__(self, experiment: _Optional[str] = ..., candidate_arm: _Optional[str] = ..., decision: _Optional[str] = ..., reason: _Optional[str] = ..., weight: _Optional[float] = ..., unix_time: _Optional[float] = ...) -> None: ...

class GuardrailReport(_message.Message):
    __slots__ = ("arm", "baseline_arm", "metric", "value", "baseline_value", "tolerance", "excess", "excess_low", "excess_high", "status")
    ARM_FIELD_NUMBER: _ClassVar[int]
    BASELINE_ARM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    BASELINE_VALUE_FIELD_NUMBER: _ClassVar[int]
    TOLERANCE_FIELD_NUMBER: _ClassVar[int]
    EXCESS_FIELD_NUMBER: _ClassVar[int]
    EXCESS_LOW_FIELD_NUMBER: _ClassVar[int]
    EXCESS_HIGH_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    arm: str
    baseline_arm: str
    metric: str
    value: float
    baseline_value: float
    tolerance: float
    excess: float
    excess_low: float
    excess_high: float
    status: str
    def __init__(self, arm: _Optional[str] = ..., baseline_arm: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., baseline_value: _Optional[float] = ..., tolerance: _Optional[float] = ..., excess: _Optional[float] = ..., excess_low: _Optional[float] = ..., excess_high: _Optional[float] = ..., status: _Optional[str] = ...) -> None: ...

class ArmReport(_message.Message):
    __slots__ = ("arm", "model", "version", "requests", "errors", "error_rate", "labelled", "correct", "accuracy", "accuracy_low", "accuracy_high", "latency_p50_seconds", "latency_p95_seconds", "latency_p99_seconds", "latency_mean_seconds", "estimated_predictions", "estimated_accuracy", "estimated_accuracy_low", "estimated_accuracy_high", "estimated_calibrated_sum", "estimated_variance_sum", "estimated_uncalibrated", "estimate_basis")
    ARM_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    CORRECT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_LOW_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_HIGH_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P95_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MEAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_ACCURACY_LOW_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_ACCURACY_HIGH_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_CALIBRATED_SUM_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_VARIANCE_SUM_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_UNCALIBRATED_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_BASIS_FIELD_NUMBER: _ClassVar[int]
    arm: str
    model: str
    version: int
    requests: int
    errors: int
    error_rate: float
    labelled: int
    correct: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    latency_p50_seconds: float
    latency_p95_seconds: float
    latency_p99_seconds: float
    latency_mean_seconds: float
    estimated_predictions: int
    estimated_accuracy: float
    estimated_accuracy_low: float
    estimated_accuracy_high: float
    estimated_calibrated_sum: float
    estimated_variance_sum: float
    estimated_uncalibrated: int
    estimate_basis: str
    def __init__(self, arm: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[int] = ..., requests: _Optional[int] = ..., errors: _Optional[int] = ..., error_rate: _Optional[float] = ..., labelled: _Optional[int] = ..., correct: _Optional[int] = ..., accuracy: _Optional[float] = ..., accuracy_low: _Optional[float] = ..., accuracy_high: _Optional[float] = ..., latency_p50_seconds: _Optional[float] = ..., latency_p95_seconds: _Optional[float] = ..., latency_p99_seconds: _Optional[float] = ..., latency_mean_seconds: _Optional[float] = ..., estimated_predictions: _Optional[int] = ..., estimated_accuracy: _Optional[float] = ..., estimated_accuracy_low: _Optional[float] = ..., estimated_accuracy_high: _Optional[float] = ..., estimated_calibrated_sum: _Optional[float] = ..., estimated_variance_sum: _Optional[float] = ..., estimated_uncalibrated: _Optional[int] = ..., estimate_basis: _Optional[str] = ...) -> None: ...

class PairReport(_message.Message):
    __slots__ = ("arm_a", "arm_b", "accuracy_difference", "difference_low", "difference_high", "z_test_p_value", "both_right", "only_a_right", "only_b_right", "both_wrong", "mcnemar_p_value", "shadow_agree", "shadow_disagree", "verdict", "more_needed_per_arm", "always_valid_p_value", "always_valid_p_holm", "sequence_low", "sequence_high", "sequence_confidence", "always_valid_test", "fixed_horizon_verdict", "verdict_basis", "shadow_agreement_rate", "shadow_agreement_low", "shadow_agreement_high", "estimated_difference", "estimated_sequence_low", "estimated_sequence_high", "estimated_sequence_confidence")
    ARM_A_FIELD_NUMBER: _ClassVar[int]
    ARM_B_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_LOW_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCE_HIGH_FIELD_NUMBER: _ClassVar[int]
    Z_TEST_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOTH_RIGHT_FIELD_NUMBER: _ClassVar[int]
    ONLY_A_RIGHT_FIELD_NUMBER: _ClassVar[int]
    ONLY_B_RIGHT_FIELD_NUMBER: _ClassVar[int]
    BOTH_WRONG_FIELD_NUMBER: _ClassVar[int]
    MCNEMAR_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_DISAGREE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    MORE_NEEDED_PER_ARM_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_VALID_P_VALUE_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_VALID_P_HOLM_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_LOW_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_HIGH_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ALWAYS_VALID_TEST_FIELD_NUMBER: _ClassVar[int]
    FIXED_HORIZON_VERDICT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_BASIS_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREEMENT_RATE_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREEMENT_LOW_FIELD_NUMBER: _ClassVar[int]
    SHADOW_AGREEMENT_HIGH_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_DIFFERENCE_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SEQUENCE_LOW_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SEQUENCE_HIGH_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_SEQUENCE_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    arm_a: str
    arm_b: str
    accuracy_difference: float
    difference_low: float
    difference_high: float
    z_test_p_value: float
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    mcnemar_p_value: float
    shadow_agree: int
    shadow_disagree: int
    verdict: str
    more_needed_per_arm: int
    always_valid_p_value: float
    always_valid_p_holm: float
    sequence_low: float
    sequence_high: float
    sequence_confidence: float
    always_valid_test: str
    fixed_horizon_verdict: str
    verdict_basis: str
    shadow_agreement_rate: float
    shadow_agreement_low: float
    shadow_agreement_high: float
    estimated_difference: float
    estimated_sequence_low: float
    estimated_sequence_high: float
    estimated_sequence_confidence: float
    def __init__(self, arm_a: _Optional[str] = ..., arm_b: _Optional[str] = ..., accuracy_difference: _Optional[float] = ..., difference_low: _Optional[float] = ..., difference_high: _Optional[float] = ..., z_test_p_value: _Optional[float] = ..., both_right: _Optional[int] = ..., only_a_right: _Optional[int] = ..., only_b_right: _Optional[int] = ..., both_wrong: _Optional[int] = ..., mcnemar_p_value: _Optional[float] = ..., shadow_agree: _Optional[int] = ..., shadow_disagree: _Optional[int] = ..., verdict: _Optional[str] = ..., more_needed_per_arm: _Optional[int] = ..., always_valid_p_value: _Optional[float] = ..., always_valid_p_holm: _Optional[float] = ..., sequence_low: _Optional[float] = ..., sequence_high: _Optional[float] = ..., sequence_confidence: _Optional[float] = ..., always_valid_test: _Optional[str] = ..., fixed_horizon_verdict: _Optional[str] = ..., verdict_basis: _Optional[str] = ..., shadow_agreement_rate: _Optional[float] = ..., shadow_agreement_low: _Optional[float] = ..., shadow_agreement_high: _Optional[float] = ..., estimated_difference: _Optional[float] = ..., estimated_sequence_low: _Optional[float] = ..., estimated_sequence_high: _Optional[float] = ..., estimated_sequence_confidence: _Optional[float] = ...) -> None: ...

class ExperimentReport(_message.Message):
    __slots__ = ("experiment", "arms", "pairs", "latency_source", "guardrails", "method", "decisions", "server_id", "label_free_method")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    ARMS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_SOURCE_FIELD_NUMBER: _ClassVar[int]
    GUARDRAILS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    SERVER_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FREE_METHOD_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    arms: _containers.RepeatedCompositeFieldContainer[ArmReport]
    pairs: _containers.RepeatedCompositeFieldContainer[PairReport]
    latency_source: str
    guardrails: _containers.RepeatedCompositeFieldContainer[GuardrailReport]
    method: str
    decisions: _containers.RepeatedCompositeFieldContainer[RolloutDecision]
    server_id: str
    label_free_method: str
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ..., arms: _Optional[_Iterable[_Union[ArmReport, _Mapping]]] = ..., pairs: _Optional[_Iterable[_Union[PairReport, _Mapping]]] = ..., latency_source: _Optional[str] = ..., guardrails: _Optional[_Iterable[_Union[GuardrailReport, _Mapping]]] = ..., method: _Optional[str] = ..., decisions: _Optional[_Iterable[_Union[RolloutDecision, _Mapping]]] = ..., server_id: _Optional[str] = ..., label_free_method: _Optional[str] = ...) -> None: ...
