"""Drive a digits server with tritonclient (Triton's own gRPC client) and print what it saw as JSON.

Runs in the ecosystem venv. Input on stdin, JSON: {"target": "host:port", "cells": [...],
"images": [[784 uint8], ...], "pngs": [base64 PNG, ...], "labels": [[model, label], ...]}.
Output: one JSON document; every call is recorded as {"ok": true, "value": ...} or
{"ok": false, "code": "NOT_FOUND", "message": ...}.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

import triton_calls


def attempt(call: Callable[[], Any]) -> dict:
    """Run one client call; record its value or its gRPC status."""
    try:
        return {"ok": True, "value": call()}
    except InferenceServerException as exc:
        return {"ok": False, "code": str(exc.status()).removeprefix("StatusCode."), "message": exc.message()}
    except grpc.RpcError as exc:
        return {"ok": False, "code": exc.code().name, "message": exc.details()}


def result(response: triton.InferResult) -> dict:
    """The parts of an InferResult the tests compare."""
    raw = response.get_response()
    outputs = [output.name for output in raw.outputs]
    return {
        "model_name": raw.model_name,
        "model_version": raw.model_version,
        "id": raw.id,
        "outputs": outputs,
        "raw": len(raw.raw_output_contents) == len(outputs),
        "digits": response.as_numpy("digit").tolist() if "digit" in outputs else None,
        "probabilities": response.as_numpy("probabilities").tolist() if "probabilities" in outputs else None,
    }


def tensor(name: str, array: np.ndarray, datatype: str) -> triton.InferInput:
    """An input tensor with raw contents, as tritonclient sends them."""
    given = triton.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array)
    return given


def infer(
    client: triton.InferenceServerClient, model: str, array: np.ndarray, datatype: str = "UINT8", **options: Any
) -> dict:
    """One tritonclient infer call with `array` as the images input; `options` go to client.infer."""
    return result(client.infer(model, [tensor("images", array, datatype)], **options))


def typed_infer(target: str, cell: str, images: np.ndarray, values: list[int] | None = None) -> dict:
    """ModelInfer with typed uint_contents through Triton's generated stub (tritonclient only sends raw)."""
    request = service_pb2.ModelInferRequest(model_name=cell, id="typed-1")
    given = request.inputs.add(name="images", datatype="UINT8", shape=list(images.shape))
    given.contents.uint_contents.extend(values if values is not None else images.ravel().tolist())
    with grpc.insecure_channel(target) as channel:
        response = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    by_name = {output.name: output for output in response.outputs}
    return {
        "model_name": response.model_name,
        "id": response.id,
        "raw": len(response.raw_output_contents) > 0,
        "digits": list(by_name["digit"].contents.int_contents),
        "probabilities": np.asarray(by_name["probabilities"].contents.fp32_contents).reshape(-1, 10).tolist(),
        "shapes": {name: list(output.shape) for name, output in by_name.items()},
        "datatypes": {name: output.datatype for name, output in by_name.items()},
    }


def main() -> None:
    given, images, pngs = triton_calls.read_input()
    target, cells = given["target"], given["cells"]
    driver = sys.modules[__name__]
    client = triton.InferenceServerClient(target)
    seen: dict[str, Any] = triton_calls.server_calls(driver, client)
    seen["server_metadata"] = attempt(lambda: client.get_server_metadata(as_json=True))
    seen["cells"] = {}
    for cell in cells:
        seen["cells"][cell] = {
            "ready": attempt(lambda: client.is_model_ready(cell)),
            "ready_v1": attempt(lambda: client.is_model_ready(cell, "1")),
            "ready_v7": attempt(lambda: client.is_model_ready(cell, "7")),
            "metadata": attempt(lambda: client.get_model_metadata(cell, as_json=True)),
            "raw_uint8": attempt(lambda: infer(client, cell, images, request_id="r-1")),
            "raw_uint8_v1": attempt(lambda: infer(client, cell, images, model_version="1")),
            "typed_uint8": attempt(lambda: typed_infer(target, cell, images)),
        }
    out_of_range = attempt(lambda: typed_infer(target, cells[0], images[:1], [300] * 784))
    seen |= triton_calls.model_calls(driver, client, given, images, pngs)  # loads/unloads last
    seen["errors"]["uint8_out_of_range"] = out_of_range
    client.close()
    print(json.dumps(seen))

if __name__ == "__main__":
    main()
