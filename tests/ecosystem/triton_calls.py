"""The calls tritonclient's gRPC and HTTP drivers (triton_client.py, triton_http_client.py) both make
against a digits server, and their shared stdin format. Each driver module passes itself as the
`driver`: its `triton` client package and its `attempt`, `infer` and `tensor` functions."""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

import numpy as np


def read_input() -> tuple[dict, np.ndarray, np.ndarray]:
    """stdin's JSON, its images as uint8 [N, 28, 28] and its PNGs as a BYTES array."""
    given = json.load(sys.stdin)
    images = np.asarray(given["images"], dtype=np.uint8).reshape(-1, 28, 28)
    pngs = np.array([base64.b64decode(p) for p in given["pngs"]], dtype=np.object_)
    return given, images, pngs


def server_calls(driver: Any, client: Any) -> dict[str, Any]:
    """Liveness, readiness and an unknown model's readiness."""
    return {
        "server_live": driver.attempt(client.is_server_live),
        "server_ready": driver.attempt(client.is_server_ready),
        "unknown_model_ready": driver.attempt(lambda: client.is_model_ready("no-such-model")),
    }


def model_calls(driver: Any, client: Any, given: dict, images: np.ndarray, pngs: np.ndarray) -> dict[str, Any]:
    """Inference by version label, FP32 pixels, PNG bytes, an output filter, the errors both
    protocols share, and the repository calls, all on the first cell."""
    attempt, infer, tensor, triton = driver.attempt, driver.infer, driver.tensor, driver.triton
    cell = given["cells"][0]
    floats = (images.astype(np.float32) / 255.0).astype(np.float32)
    return {
        "by_label": {
            f"{model}@{label}": attempt(lambda: infer(client, model, images, model_version=label))
            for model, label in given["labels"]
        },
        "fp32": attempt(lambda: infer(client, cell, floats, "FP32")),
        "png_bytes": attempt(lambda: infer(client, cell, pngs, "BYTES")),
        "only_digit": attempt(lambda: infer(client, cell, images, outputs=[triton.InferRequestedOutput("digit")])),
        "errors": {
            "unknown_model": attempt(lambda: client.infer("no-such-model", [tensor("images", images, "UINT8")])),
            "unknown_version": attempt(
                lambda: client.infer(cell, [tensor("images", images, "UINT8")], model_version="7")),
            "unknown_label": attempt(
                lambda: client.infer(cell, [tensor("images", images, "UINT8")], model_version="beta")),
            "bad_shape": attempt(lambda: client.infer(cell, [tensor("images", images.reshape(-1, 784), "UINT8")])),
            "wrong_dtype": attempt(lambda: client.infer(cell, [tensor("images", images.astype(np.int64), "INT64")])),
            "wrong_input_name": attempt(lambda: client.infer(cell, [tensor("pixels", images, "UINT8")])),
            "unknown_output": attempt(
                lambda: infer(client, cell, images, outputs=[triton.InferRequestedOutput("logits")])),
            "unknown_model_metadata": attempt(lambda: client.get_model_metadata("no-such-model")),
        },
        "load_model": attempt(lambda: client.load_model(cell)),
        "unload_model": attempt(lambda: client.unload_model(cell)),
    }
