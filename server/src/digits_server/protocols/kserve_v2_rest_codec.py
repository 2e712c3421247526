"""Open Inference Protocol v2 REST bodies <-> the v2 messages the gRPC servicer takes. No logic
beyond translation and field-level validation (messages name the JSON field at fault).

Request: a JSON object `{"id", "parameters", "inputs": [{"name", "datatype", "shape", "data"}],
"outputs": [{"name", "parameters": {"binary_data": bool}}]}`. With the binary tensor extension
(what tritonclient.http sends), the `Inference-Header-Content-Length` header gives the JSON's
length, and an input with `parameters.binary_data_size` has its bytes after the JSON, in input
order. JSON `data` may be flat or nested (row-major); BYTES elements are strings, base64 when the
input's `parameters.content_type` is "base64" (MLServer's convention), or `{"b64": "..."}`
objects (TF Serving's). Every input becomes one `raw_input_contents` entry, so the servicer
sees a single form.

Response: each output as JSON `data`, or, when asked (`binary_data` on the output, or
`binary_data_output` on the request), as `binary_data_size` bytes after the JSON.
Request parameter `timeout` (microseconds, Triton's) sets the call's deadline.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.core.errors import InvalidInput
from digits_server.protocols import tensors
from digits_server.protocols.kserve_v2_codec import join_bytes

HEADER_LENGTH = "Inference-Header-Content-Length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"


@dataclass
class RestInferRequest:
    """A decoded REST infer request: the v2 message, which outputs go back binary, and its timeout."""

    message: v2.ModelInferRequest
    binary_outputs: set[str] = field(default_factory=set)
    binary_default: bool = False
    timeout_seconds: float | None = None

    def binary(self, name: str) -> bool:
        """Whether output `name` is answered as binary data."""
        return name in self.binary_outputs or self.binary_default


def json_object(data: bytes, field_name: str) -> dict:
    """A JSON object, or InvalidInput naming `field_name`."""
    try:
        value = orjson.loads(data) if data else {}  # ~8x faster than json.loads on a pixel list
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{field_name}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field_name}: expected a JSON object, got {type(value).__name__}")
    return value


def _of_type(value: Any, kind: type | tuple[type, ...], field_name: str, expected: str) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InvalidInput(f"{field_name}: expected {expected}, got {json.dumps(value)[:80]}")
    return value


def _flat(data: Any) -> Iterable[Any]:
    if isinstance(data, list):
        for item in data:
            yield from _flat(item)
    else:
        yield data


def file_element(element: Any, base64_strings: bool, field_name: str) -> bytes:
    """One BYTES element: a `{"b64": ...}` object, or a string (base64 with `base64_strings`, else UTF-8)."""
    try:
        if isinstance(element, dict) and set(element) == {"b64"} and isinstance(element["b64"], str):
            return base64.b64decode(element["b64"], validate=True)
        if isinstance(element, str):
            return base64.b64decode(element, validate=True) if base64_strings else element.encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field_name}: not valid base64 ({exc})") from None
    raise InvalidInput(f"{field_name}: BYTES elements are strings or {{\"b64\": \"...\"}} objects")


def json_data_as_raw(datatype: str, data: Any, parameters: dict, field_name: str) -> bytes:
    """A JSON `data` value as the raw bytes of `datatype` (checked here, so errors name the JSON field)."""
    if not isinstance(data, list):
        raise InvalidInput(f"{field_name}: expected a JSON array of elements")
    if datatype == "BYTES":
        base64_strings = parameters.get("content_type") == "base64"
        return join_bytes([file_element(e, base64_strings, f"{field_name}[{i}]") for i, e in enumerate(_flat(data))])
    try:
        array = np.asarray(data)
    except ValueError as exc:  # ragged nesting
        raise InvalidInput(f"{field_name}: not a regular array ({exc})") from None
    if datatype == "UINT8":
        if array.size and array.dtype.kind not in "iu":
            raise InvalidInput(f"{field_name}: UINT8 elements must be integers")
        return tensors.uint8_values(array.ravel(), field_name).tobytes()
    if datatype == "FP32":
        if array.size and array.dtype.kind not in "iuf":
            raise InvalidInput(f"{field_name}: FP32 elements must be numbers")
        return array.astype("<f4").tobytes()
    return b""  # any other datatype: the servicer refuses it, naming inputs[i].datatype


def infer_request(body: bytes, header_length: str | None, name: str, version: str) -> RestInferRequest:
    """A REST infer body (JSON, optionally followed by binary tensor data) as a ModelInferRequest."""
    binary = b""
    if header_length is not None:
        try:
            length = int(header_length)
        except ValueError:
            length = -1
        if not 0 <= length <= len(body):
            raise InvalidInput(f"{HEADER_LENGTH}: {header_length!r} is not a length within the {len(body)}-byte body")
        body, binary = body[:length], memoryview(body)[length:]
    given = json_object(body, "request body")
    message = v2.ModelInferRequest(model_name=name, model_version=version)
    message.id = str(_of_type(given.get("id", ""), str, "id", "a string"))
    parameters = _of_type(given.get("parameters", {}), dict, "parameters", "an object")
    decoded = RestInferRequest(message, binary_default=bool(parameters.get("binary_data_output", False)))
    if "timeout" in parameters:
        microseconds = _of_type(parameters["timeout"], int, "parameters.timeout", "microseconds (an integer)")
        if microseconds <= 0:
            raise InvalidInput(f"parameters.timeout: must be positive microseconds, got {microseconds}")
        decoded.timeout_seconds = microseconds / 1e6
    position = 0
    for i, tensor in enumerate(_of_type(given.get("inputs", []), list, "inputs", "an array")):
        at = f"inputs[{i}]"
        _of_type(tensor, dict, at, "an object")
        tensor_parameters = _of_type(tensor.get("parameters", {}), dict, f"{at}.parameters", "an object")
        shape = [_of_type(d, int, f"{at}.shape", "integers") for d in _of_type(tensor.get("shape"), list, f"{at}.shape", "an array")]
        datatype = _of_type(tensor.get("datatype", ""), str, f"{at}.datatype", "a string")
        message.inputs.add(name=_of_type(tensor.get("name", ""), str, f"{at}.name", "a string"), datatype=datatype, shape=shape)
        tensors.element_count(shape, at)
        if "binary_data_size" in tensor_parameters:
            size = _of_type(tensor_parameters["binary_data_size"], int, f"{at}.parameters.binary_data_size", "an integer")
            if size < 0 or position + size > len(binary):
                raise InvalidInput(
                    f"{at}.parameters.binary_data_size: {size} bytes at offset {position} is past the "
                    f"{len(binary)} bytes of binary data after the JSON ({HEADER_LENGTH})"
                )
            message.raw_input_contents.append(bytes(binary[position : position + size]))
            position += size
        elif "data" in tensor:
            message.raw_input_contents.append(json_data_as_raw(datatype, tensor["data"], tensor_parameters, f"{at}.data"))
        else:
            raise InvalidInput(f"{at}: needs data, or parameters.binary_data_size with binary data after the JSON")
    if position != len(binary):
        raise InvalidInput(f"{HEADER_LENGTH}: {len(binary) - position} bytes after the JSON belong to no input")
    for i, output in enumerate(_of_type(given.get("outputs", []), list, "outputs", "an array")):
        at = f"outputs[{i}]"
        _of_type(output, dict, at, "an object")
        output_name = _of_type(output.get("name", ""), str, f"{at}.name", "a string")
        message.outputs.add(name=output_name)
        if _of_type(output.get("parameters", {}), dict, f"{at}.parameters", "an object").get("binary_data"):
            decoded.binary_outputs.add(output_name)
    return decoded


def infer_response(response: v2.ModelInferResponse, request: RestInferRequest) -> tuple[bytes, int | None]:
    """The servicer's (raw) answer as a REST body, and the JSON's length when binary data follows."""
    body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id:
        body["id"] = response.id
    if response.parameters:
        body["parameters"] = {key: value.string_param for key, value in response.parameters.items()}
    chunks: list[bytes] = []
    outputs = []
    for i, output in enumerate(response.outputs):
        raw = response.raw_output_contents[i]
        entry: dict[str, Any] = {"name": output.name, "datatype": output.datatype, "shape": list(output.shape)}
        if request.binary(output.name):
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = np.frombuffer(raw, dtype="<f4" if output.datatype == "FP32" else "<i4").tolist()
        outputs.append(entry)
    body["outputs"] = outputs
    text = orjson.dumps(body)
    if not chunks:
        return text, None
    return b"".join([text, *chunks]), len(text)


def model_metadata(response: v2.ModelMetadataResponse) -> dict:
    """A ModelMetadataResponse as the REST JSON (integer shapes)."""

    def tensor(meta: v2.ModelMetadataResponse.TensorMetadata) -> dict:
        return {"name": meta.name, "datatype": meta.datatype, "shape": list(meta.shape)}

    return {
        "name": response.name,
        "versions": list(response.versions),
        "platform": response.platform,
        "inputs": [tensor(t) for t in response.inputs],
        "outputs": [tensor(t) for t in response.outputs],
    }
