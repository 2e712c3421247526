"""Open Inference Protocol v2 wire <-> domain conversion. No logic beyond translation and
field-level validation (messages name the request field at fault).

What the models look like over v2 (ModelMetadata says the same):
- input `images`: UINT8 [-1,28,28] pixels; also accepted: FP32 [-1,28,28] in [0,1], and
  BYTES [-1] (or [-1,1]) holding one encoded image file (PNG, JPEG, ...) per element;
- outputs `probabilities` FP32 [-1,10] and `digit` INT32 [-1].
Tensors may come as typed `contents` or as `raw_input_contents`; the response uses the same
form as the request (raw when the request was raw).
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Sequence

import numpy as np

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.core import imaging
from digits_server.core.domain import BatchOutcome, ModelSelector
from digits_server.core.errors import InvalidInput
from digits_server.protocols import naming, tensors

DIGIT_OUTPUT = "digit"
OUTPUTS = (naming.OUTPUT_TENSOR, DIGIT_OUTPUT)
PLATFORM = "tensorflow_savedmodel"
INPUT_DATATYPES = ("UINT8", "FP32", "BYTES")
INPUT_METADATA = v2.ModelMetadataResponse.TensorMetadata(name=naming.INPUT_TENSOR, datatype="UINT8", shape=[-1, 28, 28])
OUTPUT_METADATA = (
    v2.ModelMetadataResponse.TensorMetadata(name=naming.OUTPUT_TENSOR, datatype="FP32", shape=[-1, 10]),
    v2.ModelMetadataResponse.TensorMetadata(name=DIGIT_OUTPUT, datatype="INT32", shape=[-1]),
)
LENGTH_PREFIX = struct.Struct("<I")


def version_of(text: str, field: str) -> tuple[int | None, str]:
    """A v2 version string as (version, label): "" -> newest, "3" -> version 3, "stable" -> a label."""
    if not text:
        return None, ""
    if text.lstrip("+-").isdigit():
        if int(text) <= 0:
            raise InvalidInput(f"{field}: a version must be a positive integer, got {text}")
        return int(text), ""
    return None, text


def selector(name: str, version: str, models: Collection[str], field: str = "model_version") -> ModelSelector:
    """Model name and version string as a selector (see naming.py for the rules)."""
    number, label = version_of(version, field)
    return naming.selector(name, number, label, models)


def split_bytes(raw: bytes, field: str) -> list[bytes]:
    """A raw BYTES tensor: each element is a 4-byte little-endian length, then that many bytes."""
    items: list[bytes] = []
    position = 0
    while position < len(raw):
        if position + LENGTH_PREFIX.size > len(raw):
            raise InvalidInput(f"{field}: truncated BYTES element length at offset {position}")
        (length,) = LENGTH_PREFIX.unpack_from(raw, position)
        position += LENGTH_PREFIX.size
        if position + length > len(raw):
            raise InvalidInput(
                f"{field}: BYTES element at offset {position - LENGTH_PREFIX.size} claims {length} bytes, "
                f"{len(raw) - position} remain"
            )
        items.append(raw[position : position + length])
        position += length
    return items


def join_bytes(items: Sequence[bytes]) -> bytes:
    """The raw form of a BYTES tensor (the inverse of split_bytes)."""
    return b"".join(LENGTH_PREFIX.pack(len(item)) + item for item in items)


def _raw_values(datatype: str, raw: bytes, field: str) -> "np.ndarray | list[bytes]":
    if datatype == "UINT8":
        return np.frombuffer(raw, dtype=np.uint8)
    if datatype == "FP32":
        if len(raw) % 4:
            raise InvalidInput(f"{field}: {len(raw)} bytes is not a whole number of FP32 elements")
        return np.frombuffer(raw, dtype="<f4").astype(np.float32, copy=False)
    return split_bytes(raw, field)


def _typed_values(datatype: str, contents: v2.InferTensorContents, field: str) -> "np.ndarray | list[bytes]":
    if datatype == "UINT8":
        return tensors.uint8_values(contents.uint_contents, f"{field}.uint_contents")
    if datatype == "FP32":
        return np.asarray(contents.fp32_contents, dtype=np.float32)
    return list(contents.bytes_contents)


def is_encoded(request: v2.ModelInferRequest) -> bool:
    """Whether the request carries image files (decoding them is worth a worker thread)."""
    return any(tensor.datatype == "BYTES" for tensor in request.inputs)


def images(
    request: v2.ModelInferRequest, limit: int, limits: imaging.ImageLimits = imaging.ImageLimits()
) -> tuple[np.ndarray, bool]:
    """The request's one input as uint8 images [N,28,28], and whether it came raw."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"inputs: expected exactly one input '{naming.INPUT_TENSOR}', got {len(request.inputs)}")
    tensor = request.inputs[0]
    field = "inputs[0]"
    if tensor.name != naming.INPUT_TENSOR:
        raise InvalidInput(f"{field}.name: expected '{naming.INPUT_TENSOR}', got '{tensor.name}'")
    if tensor.datatype not in INPUT_DATATYPES:
        raise InvalidInput(
            f"{field}.datatype: {tensor.datatype or 'empty'} is not accepted; send UINT8 or FP32 [N,28,28] "
            "pixels, or BYTES [N] holding encoded PNG/JPEG files"
        )
    raw = len(request.raw_input_contents) > 0
    if raw:
        if len(request.raw_input_contents) != 1:
            count = len(request.raw_input_contents)
            raise InvalidInput(f"raw_input_contents: expected one entry (one per input), got {count}")
        if tensor.HasField("contents"):
            raise InvalidInput(f"{field}.contents: set contents or raw_input_contents, not both")
        values = _raw_values(tensor.datatype, request.raw_input_contents[0], "raw_input_contents[0]")
    else:
        values = _typed_values(tensor.datatype, tensor.contents, f"{field}.contents")
    return tensors.to_images(values, list(tensor.shape), field, limit, limits), raw


def requested_outputs(request: v2.ModelInferRequest) -> list[str]:
    """The output names to return, in the requested order (all of them when none is asked for)."""
    names = [output.name for output in request.outputs] or list(OUTPUTS)
    for i, name in enumerate(names):
        if name not in OUTPUTS:
            raise InvalidInput(f"outputs[{i}].name: no output '{name}' (outputs: {', '.join(OUTPUTS)})")
    return names


def infer_response(outcome: BatchOutcome, request_id: str, outputs: Sequence[str], raw: bool) -> v2.ModelInferResponse:
    """The outcome as a ModelInferResponse with the named outputs, raw or typed."""
    served = outcome.served_by
    response = v2.ModelInferResponse(model_name=served.model, model_version=str(served.version), id=request_id)
    if served.experiment:
        response.parameters["experiment"].string_param = served.experiment
        response.parameters["arm"].string_param = served.arm
    count = len(outcome.digits)
    for name in outputs:
        tensor = response.outputs.add(name=name)
        if name == naming.OUTPUT_TENSOR:
            values = np.asarray(outcome.probabilities, dtype="<f4")
            tensor.datatype, tensor.shape[:] = "FP32", [count, values.shape[1]]
        else:
            values = np.asarray(outcome.digits, dtype="<i4")
            tensor.datatype, tensor.shape[:] = "INT32", [count]
        if raw:
            response.raw_output_contents.append(values.tobytes())
        elif name == naming.OUTPUT_TENSOR:
            tensor.contents.fp32_contents.extend(values.ravel().tolist())
        else:
            tensor.contents.int_contents.extend(values.tolist())
    return response


def model_metadata(name: str, versions: Sequence[int]) -> v2.ModelMetadataResponse:
    """A model's v2 metadata: its available versions and the tensors every version takes and gives."""
    return v2.ModelMetadataResponse(
        name=name,
        versions=[str(v) for v in versions],
        platform=PLATFORM,
        inputs=[INPUT_METADATA],
        outputs=list(OUTPUT_METADATA),
    )
