"""TensorFlow Serving REST bodies <-> the TF Serving messages the gRPC servicers take. No logic
beyond translation and field-level validation (messages name the JSON field at fault).

Predict takes TF Serving's two request formats:
- row ("instances"): a list with one entry per image, either the value itself or an object
  naming the input (`{"images": ...}`); the answer is `{"predictions": [{"probabilities": [...],
  "digit": d}, ...]}`, one object per image;
- columnar ("inputs"): the batch as one value, or an object naming the input; the answer is
  `{"outputs": {"probabilities": [[...]], "digit": [...]}}`.
A value is nested numbers (integers: uint8 pixels; any fraction: float pixels in [0,1]) shaped
[N,28,28], or encoded image files as `{"b64": "..."}` objects, as TF Serving's REST API writes
binary strings. Pixels go to the servicer packed (tensor_content), so it answers packed.
Status and metadata answers are the gRPC messages in JSON, as TF Serving writes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import json_format
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2

from digits_server.apis import tensorflow_serving_pb2 as tfs
from digits_server.core.errors import InvalidInput
from digits_server.protocols import naming, tensors
from digits_server.protocols.kserve_v2_rest_codec import file_element, json_object

ROW, COLUMNAR = "instances", "inputs"
NUMPY_TYPES = {types_pb2.DT_FLOAT: "<f4", types_pb2.DT_INT32: "<i4", types_pb2.DT_UINT8: np.uint8}


def model_spec(name: str, version: str = "", label: str = "", signature: str = "") -> tfs.ModelSpec:
    """The spec a REST path names: /v1/models/{name}[/versions/{version}|/labels/{label}]."""
    spec = tfs.ModelSpec(name=name, version_label=label, signature_name=signature)
    if version:
        if not version.isdigit() or int(version) <= 0:
            raise InvalidInput(f"version: a version must be a positive integer, got {version!r}")
        spec.version.value = int(version)
    return spec


def _is_file(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_file(value)


def _tensor(value: Any, field: str) -> tensor_pb2.TensorProto:
    """A JSON value as a packed uint8 / float tensor, or a string tensor of image files."""
    if isinstance(value, list) and value and all(_is_file(v) or isinstance(v, str) for v in value):
        files = [file_element(v, False, f"{field}[{i}]") for i, v in enumerate(value)]
        shape = tensor_shape_pb2.TensorShapeProto(dim=[{"size": len(files)}])
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=files)
    try:
        array = np.asarray(value)
    except ValueError as exc:
        raise InvalidInput(f"{field}: not a regular array ({exc})") from None
    if array.dtype.kind in "iu":
        array, dtype = tensors.uint8_values(array.ravel(), field).reshape(array.shape), types_pb2.DT_UINT8
    elif array.dtype.kind == "f":
        array, dtype = array.astype("<f4"), types_pb2.DT_FLOAT
    else:
        raise InvalidInput(
            f"{field}: expected numbers shaped [N,28,28] (uint8 pixels, or floats in [0,1]) or "
            '{"b64": "..."} image files'
        )
    shape = tensor_shape_pb2.TensorShapeProto(dim=[{"size": size} for size in array.shape])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=array.tobytes())


def predict_request(body: bytes, spec: tfs.ModelSpec) -> tuple[tfs.PredictRequest, str]:
    """A REST predict body as a PredictRequest for `spec`, and its format (ROW or COLUMNAR)."""
    given = json_object(body, "request body")
    if (ROW in given) == (COLUMNAR in given):
        raise InvalidInput("request body: needs 'instances' (row format) or 'inputs' (columnar format), exactly one")
    signature = given.get("signature_name", "")
    if not isinstance(signature, str):
        raise InvalidInput("signature_name: expected a string")
    spec.signature_name = signature
    request = tfs.PredictRequest(model_spec=spec)
    if ROW in given:
        instances = given[ROW]
        if not isinstance(instances, list) or not instances:
            raise InvalidInput(f"{ROW}: expected a non-empty list, one entry per image")
        if all(_named(i) for i in instances):
            names = {tuple(sorted(i)) for i in instances}
            if len(names) != 1:
                raise InvalidInput(f"{ROW}: every instance must name the same inputs, got {sorted(names)}")
            columns = {name: [i[name] for i in instances] for name in instances[0]}
        else:
            columns = {naming.INPUT_TENSOR: instances}
        fmt = ROW
    else:
        columns = given[COLUMNAR] if _named(given[COLUMNAR]) else {naming.INPUT_TENSOR: given[COLUMNAR]}
        fmt = COLUMNAR
    for name, value in columns.items():
        request.inputs[name].CopyFrom(_tensor(value, f"{fmt}['{name}']" if fmt == COLUMNAR else f"{ROW}[*]['{name}']"))
    return request, fmt


def _array(tensor: tensor_pb2.TensorProto) -> np.ndarray:
    """An output tensor, packed or typed (the servicer answers typed when the input was image files)."""
    dtype = NUMPY_TYPES[tensor.dtype]
    if tensor.tensor_content:
        values = np.frombuffer(tensor.tensor_content, dtype=dtype)
    else:
        values = np.asarray(tensor.float_val if tensor.dtype == types_pb2.DT_FLOAT else tensor.int_val, dtype=dtype)
    return values.reshape([dim.size for dim in tensor.tensor_shape.dim])


def predict_body(response: tfs.PredictResponse, fmt: str) -> dict:
    """A PredictResponse in the request's format."""
    arrays = {name: _array(tensor) for name, tensor in response.outputs.items()}
    if fmt == COLUMNAR:
        return {"outputs": {name: array.tolist() for name, array in arrays.items()}}
    count = len(next(iter(arrays.values()))) if arrays else 0
    columns = {name: array.tolist() for name, array in arrays.items()}
    return {"predictions": [{name: column[i] for name, column in columns.items()} for i in range(count)]}


def as_json(message: Any) -> dict:
    """A message as TF Serving's REST API writes it (field names as in the proto, defaults shown)."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def metadata_body(response: tfs.GetModelMetadataResponse) -> dict:
    """GetModelMetadata's answer with the signature map unpacked, as TF Serving's REST API shows it."""
    signatures = tfs.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return {"model_spec": as_json(response.model_spec), "metadata": {"signature_def": as_json(signatures)}}
