"""Drive a digits server's REST port with tritonclient.http (Triton's own HTTP client) and print
what it saw as JSON.

Runs in the ecosystem venv. Input on stdin, JSON: {"target": "host:port" (the REST port),
"cells": [...], "images": [[784 uint8], ...], "pngs": [base64 PNG, ...], "labels": [[model, label], ...]}.
Output: one JSON document; every call is recorded as {"ok": true, "value": ...} or
{"ok": false, "status": "404", "message": ...}.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

import triton_calls


def attempt(call: Callable[[], Any]) -> dict:
    """Run one client call; record its value or its HTTP status and error message."""
    try:
        return {"ok": True, "value": call()}
    except InferenceServerException as exc:
        return {"ok": False, "status": exc.status(), "message": exc.message()}


def result(response: triton.InferResult) -> dict:
    """The parts of an InferResult the tests compare."""
    raw = response.get_response()
    outputs = [output["name"] for output in raw["outputs"]]
    return {
        "model_name": raw["model_name"],
        "model_version": raw["model_version"],
        "id": raw.get("id", ""),
        "parameters": raw.get("parameters", {}),
        "outputs": outputs,
        "binary": [("binary_data_size" in output.get("parameters", {})) for output in raw["outputs"]],
        "digits": response.as_numpy("digit").tolist() if "digit" in outputs else None,
        "probabilities": response.as_numpy("probabilities").tolist() if "probabilities" in outputs else None,
    }


def tensor(name: str, array: np.ndarray, datatype: str, binary: bool = True) -> triton.InferInput:
    """An input tensor, binary (the extension tritonclient uses by default) or as JSON data."""
    given = triton.InferInput(name, list(array.shape), datatype)
    given.set_data_from_numpy(array, binary_data=binary)
    return given


def infer(
    client: triton.InferenceServerClient, model: str, array: np.ndarray, datatype: str = "UINT8",
    binary: bool = True, **options: Any,
) -> dict:
    """One tritonclient.http infer call with `array` as the images input; `options` go to client.infer."""
    return result(client.infer(model, [tensor("images", array, datatype, binary)], **options))


def main() -> None:
    given, images, pngs = triton_calls.read_input()
    target, cells = given["target"], given["cells"]
    driver = sys.modules[__name__]
    client = triton.InferenceServerClient(target, network_timeout=60.0)
    seen: dict[str, Any] = triton_calls.server_calls(driver, client)
    seen["server_metadata"] = attempt(client.get_server_metadata)
    seen["cells"] = {}
    for cell in cells:
        seen["cells"][cell] = {
            "ready": attempt(lambda: client.is_model_ready(cell)),
            "ready_v1": attempt(lambda: client.is_model_ready(cell, "1")),
            "ready_v7": attempt(lambda: client.is_model_ready(cell, "7")),
            "metadata": attempt(lambda: client.get_model_metadata(cell)),
            "metadata_v1": attempt(lambda: client.get_model_metadata(cell, "1")),
            "binary_uint8": attempt(lambda: infer(client, cell, images, request_id="r-1")),
            "binary_uint8_v1": attempt(lambda: infer(client, cell, images, model_version="1")),
            "json_uint8": attempt(
                lambda: infer(client, cell, images, binary=False, request_id="j-1", outputs=[
                    triton.InferRequestedOutput("probabilities", binary_data=False),
                    triton.InferRequestedOutput("digit", binary_data=False),
                ])
            ),
        }
    cell = cells[0]
    floats = (images.astype(np.float32) / 255.0).astype(np.float32)
    seen["fp32_json"] = attempt(lambda: infer(client, cell, floats, "FP32", binary=False))
    seen["with_timeout"] = attempt(lambda: infer(client, cell, images, timeout=60_000_000))
    tiny_timeout = attempt(lambda: infer(client, cell, images, timeout=1))
    seen |= triton_calls.model_calls(driver, client, given, images, pngs)  # loads/unloads last
    seen["errors"]["tiny_timeout"] = tiny_timeout
    client.close()
    print(json.dumps(seen))

if __name__ == "__main__":
    main()
