"""TensorFlow Serving wire <-> domain conversion. No logic beyond translation and field-level
validation (messages name the request field at fault).

What the models look like over TF Serving (GetModelMetadata says the same): one signature,
`serving_default`, with input `images` (DT_UINT8 [-1,28,28]; also accepted: DT_FLOAT
[-1,28,28] in [0,1], DT_STRING [-1] holding one encoded image file per element) and outputs
`probabilities` (DT_FLOAT [-1,10]) and `digit` (DT_INT32 [-1]). Tensors may come packed in
`tensor_content` or in the typed `*_val` fields; the response uses the same form.

TensorFlow's own messages come from the installed tensorflow package (never a copy).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
from google.protobuf import any_pb2, wrappers_pb2
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow.core.protobuf import error_codes_pb2, meta_graph_pb2

from digits_server.apis import tensorflow_serving_pb2 as tfs
from digits_server.core import imaging
from digits_server.core.domain import BatchOutcome, ModelSelector, ServedBy
from digits_server.core.errors import InvalidInput
from digits_server.core.manager import VersionSlot
from digits_server.protocols import naming, tensors

DIGIT_OUTPUT = "digit"
OUTPUTS = (naming.OUTPUT_TENSOR, DIGIT_OUTPUT)
PREDICT_METHOD = "tensorflow/serving/predict"
SIGNATURE_DEF_FIELD = "signature_def"
INPUT_FIELD = f"inputs['{naming.INPUT_TENSOR}']"
STATES = {
    "LOADING": tfs.ModelVersionStatus.LOADING,
    "AVAILABLE": tfs.ModelVersionStatus.AVAILABLE,
    "UNLOADING": tfs.ModelVersionStatus.UNLOADING,
    "FAILED": tfs.ModelVersionStatus.END,  # TF Serving: a failed load ends, with an error status
    "END": tfs.ModelVersionStatus.END,
}


def selector(
    spec: tfs.ModelSpec, models: Collection[str], experiments: bool = True, field: str = "model_spec"
) -> ModelSelector:
    """A ModelSpec as a selector (see naming.py; `experiments`: may the name be an experiment's);
    only the serving_default signature exists."""
    if spec.signature_name not in ("", naming.SIGNATURE):
        raise InvalidInput(f"{field}.signature_name: no signature '{spec.signature_name}' (signatures: {naming.SIGNATURE})")
    version = None
    if spec.HasField("version"):
        version = spec.version.value
        if version <= 0:
            raise InvalidInput(f"{field}.version: must be a positive integer, got {version}")
    return naming.selector(spec.name, version, spec.version_label, models, experiments)


def _shape(tensor: tensor_pb2.TensorProto, field: str) -> list[int]:
    if tensor.tensor_shape.unknown_rank:
        raise InvalidInput(f"{field}.tensor_shape: the shape must be known")
    return [dim.size for dim in tensor.tensor_shape.dim]


def _fill(values: np.ndarray, count: int) -> np.ndarray:
    """TensorFlow's rule for typed values: fewer than the shape holds repeat the last one."""
    if 0 < values.size < count:
        return np.pad(values, (0, count - values.size), mode="edge")
    return values


def is_encoded(inputs: "dict[str, tensor_pb2.TensorProto]") -> bool:
    """Whether the request carries image files (decoding them is worth a worker thread)."""
    return any(tensor.dtype == types_pb2.DT_STRING for tensor in inputs.values())


def images(
    inputs: "dict[str, tensor_pb2.TensorProto]", limit: int, limits: imaging.ImageLimits = imaging.ImageLimits()
) -> tuple[np.ndarray, bool]:
    """The request's `images` tensor as uint8 images [N,28,28], and whether it was packed."""
    if set(inputs) != {naming.INPUT_TENSOR}:
        raise InvalidInput(f"inputs: expected exactly the input '{naming.INPUT_TENSOR}', got {sorted(inputs) or 'none'}")
    tensor = inputs[naming.INPUT_TENSOR]
    shape = _shape(tensor, INPUT_FIELD)
    packed = bool(tensor.tensor_content)
    values: "np.ndarray | list[bytes]"
    if tensor.dtype == types_pb2.DT_UINT8:
        values = (
            np.frombuffer(tensor.tensor_content, dtype=np.uint8)
            if packed
            else tensors.uint8_values(tensor.int_val, f"{INPUT_FIELD}.int_val")
        )
    elif tensor.dtype == types_pb2.DT_FLOAT:
        if packed and len(tensor.tensor_content) % 4:
            raise InvalidInput(f"{INPUT_FIELD}.tensor_content: {len(tensor.tensor_content)} bytes is not whole floats")
        values = (
            np.frombuffer(tensor.tensor_content, dtype="<f4").astype(np.float32, copy=False)
            if packed
            else np.asarray(tensor.float_val, dtype=np.float32)
        )
    elif tensor.dtype == types_pb2.DT_STRING:
        values = list(tensor.string_val)
    else:
        raise InvalidInput(
            f"{INPUT_FIELD}.dtype: {types_pb2.DataType.Name(tensor.dtype)} is not accepted; send DT_UINT8 or "
            "DT_FLOAT [N,28,28] pixels, or DT_STRING [N] holding encoded PNG/JPEG files"
        )
    if isinstance(values, np.ndarray) and not packed:
        values = _fill(values, tensors.element_count(shape, INPUT_FIELD))
    return tensors.to_images(values, shape, INPUT_FIELD, limit, limits), packed


def _tensor(values: np.ndarray, dtype: int, packed: bool) -> tensor_pb2.TensorProto:
    tensor = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": size} for size in values.shape]),
    )
    if packed:
        tensor.tensor_content = values.tobytes()
    elif dtype == types_pb2.DT_FLOAT:
        tensor.float_val.extend(values.ravel().tolist())
    else:
        tensor.int_val.extend(values.ravel().tolist())
    return tensor


def model_spec(served: ServedBy) -> tfs.ModelSpec:
    """The spec of the version that served, as TF Serving echoes it."""
    version = wrappers_pb2.Int64Value(value=served.version)
    return tfs.ModelSpec(name=served.model, version=version, signature_name=naming.SIGNATURE)


def predict_response(outcome: BatchOutcome, output_filter: Sequence[str], packed: bool) -> tfs.PredictResponse:
    """The outcome as a PredictResponse holding the filtered outputs (all when the filter is empty)."""
    for i, name in enumerate(output_filter):
        if name not in OUTPUTS:
            raise InvalidInput(f"output_filter[{i}]: no output '{name}' (outputs: {', '.join(OUTPUTS)})")
    response = tfs.PredictResponse(model_spec=model_spec(outcome.served_by))
    for name in output_filter or OUTPUTS:
        if name == naming.OUTPUT_TENSOR:
            response.outputs[name].CopyFrom(
                _tensor(np.asarray(outcome.probabilities, dtype="<f4"), types_pb2.DT_FLOAT, packed)
            )
        else:
            digits = np.asarray(outcome.digits, dtype="<i4")
            response.outputs[name].CopyFrom(_tensor(digits, types_pb2.DT_INT32, packed))
    return response


def _tensor_info(name: str, dtype: int, dims: Sequence[int]) -> meta_graph_pb2.TensorInfo:
    return meta_graph_pb2.TensorInfo(
        name=name, dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[{"size": d} for d in dims])
    )


def signature_def() -> meta_graph_pb2.SignatureDef:
    """The one signature Predict serves, as TF Serving describes a SavedModel's."""
    return meta_graph_pb2.SignatureDef(
        inputs={naming.INPUT_TENSOR: _tensor_info(f"{naming.SIGNATURE}_{naming.INPUT_TENSOR}:0", types_pb2.DT_UINT8, [-1, 28, 28])},
        outputs={
            naming.OUTPUT_TENSOR: _tensor_info(f"{naming.OUTPUT_TENSOR}:0", types_pb2.DT_FLOAT, [-1, 10]),
            DIGIT_OUTPUT: _tensor_info(f"{DIGIT_OUTPUT}:0", types_pb2.DT_INT32, [-1]),
        },
        method_name=PREDICT_METHOD,
    )


def metadata_response(request: tfs.GetModelMetadataRequest, served: ServedBy) -> tfs.GetModelMetadataResponse:
    """GetModelMetadata's answer; only the "signature_def" field exists."""
    if not request.metadata_field:
        raise InvalidInput(f"metadata_field: name at least one field ({SIGNATURE_DEF_FIELD})")
    for i, name in enumerate(request.metadata_field):
        if name != SIGNATURE_DEF_FIELD:
            raise InvalidInput(f"metadata_field[{i}]: '{name}' is not supported (supported: {SIGNATURE_DEF_FIELD})")
    packed = any_pb2.Any()
    packed.Pack(tfs.SignatureDefMap(signature_def={naming.SIGNATURE: signature_def()}))
    return tfs.GetModelMetadataResponse(model_spec=model_spec(served), metadata={SIGNATURE_DEF_FIELD: packed})


def version_status(slot: VersionSlot) -> tfs.ModelVersionStatus:
    """One version slot with TF Serving's state names (FAILED is END with an error status)."""
    status = tfs.StatusProto(error_code=error_codes_pb2.OK)
    if slot.state == "FAILED":
        status = tfs.StatusProto(error_code=error_codes_pb2.UNKNOWN, error_message=slot.error)
    return tfs.ModelVersionStatus(
        version=slot.version, state=STATES.get(slot.state, tfs.ModelVersionStatus.UNKNOWN), status=status
    )
