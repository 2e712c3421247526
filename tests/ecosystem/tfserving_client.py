"""Drive a digits server with tensorflow-serving-api's stubs and print what it saw as JSON.

Runs in the ecosystem venv. Input on stdin, JSON: {"target": "host:port", "cells": [...],
"images": [[784 uint8], ...], "pngs": [base64 PNG, ...], "labels": [[model, label], ...]}.
Output: one JSON document; every call is recorded as {"ok": true, "value": ...} or
{"ok": false, "code": "NOT_FOUND", "message": ...}.
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

TIMEOUT = 60


def attempt(call: Callable[[], Any]) -> dict:
    """Run one stub call; record its value or its gRPC status."""
    try:
        return {"ok": True, "value": call()}
    except grpc.RpcError as exc:
        return {"ok": False, "code": exc.code().name, "message": exc.details()}


def spec(message: Any, name: str, version: int | None = None, label: str = "", signature: str = "") -> None:
    """Fill a ModelSpec."""
    message.name = name
    if version is not None:
        message.version.value = version
    if label:
        message.version_label = label
    if signature:
        message.signature_name = signature


def predict(stub: Any, name: str, images: Any, version: int | None = None, label: str = "", **options: Any) -> dict:
    """Predict with a tensor made by tf.make_tensor_proto (packed tensor_content) unless `tensor` is given."""
    request = predict_pb2.PredictRequest()
    spec(request.model_spec, name, version, label, options.get("signature", ""))
    tensor = options["tensor"] if "tensor" in options else tf.make_tensor_proto(images)
    request.inputs[options.get("input_name", "images")].CopyFrom(tensor)
    request.output_filter.extend(options.get("output_filter", []))
    response = stub.Predict(request, timeout=TIMEOUT)
    outputs = {key: tf.make_ndarray(value) for key, value in response.outputs.items()}
    return {
        "model_spec": json_format.MessageToDict(response.model_spec),
        "outputs": sorted(outputs),
        "packed": {key: bool(value.tensor_content) for key, value in response.outputs.items()},
        "dtypes": {key: tf.dtypes.as_dtype(value.dtype).name for key, value in response.outputs.items()},
        "digits": outputs["digit"].tolist() if "digit" in outputs else None,
        "probabilities": outputs["probabilities"].tolist() if "probabilities" in outputs else None,
    }


def typed_uint8(images: np.ndarray) -> Any:
    """A DT_UINT8 TensorProto with its values in int_val (not tensor_content)."""
    proto = tf.make_tensor_proto(images)
    proto.ClearField("tensor_content")
    proto.int_val.extend(images.ravel().tolist())
    return proto


def metadata(stub: Any, name: str, fields: tuple[str, ...] = ("signature_def",)) -> dict:
    """GetModelMetadata, with the signature_def map unpacked."""
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    spec(request.model_spec, name)
    response = stub.GetModelMetadata(request, timeout=TIMEOUT)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    return {
        "model_spec": json_format.MessageToDict(response.model_spec),
        "signature_def": json_format.MessageToDict(signatures)["signatureDef"],
    }


def status(stub: Any, name: str, version: int | None = None) -> dict:
    """GetModelStatus as a dict."""
    request = get_model_status_pb2.GetModelStatusRequest()
    spec(request.model_spec, name, version)
    return json_format.MessageToDict(stub.GetModelStatus(request, timeout=TIMEOUT), preserving_proto_field_name=True)


def main() -> None:
    given = json.load(sys.stdin)
    cells = given["cells"]
    images = np.asarray(given["images"], dtype=np.uint8).reshape(-1, 28, 28)
    pngs = [base64.b64decode(p) for p in given["pngs"]]
    channel = grpc.insecure_channel(given["target"])
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)
    seen: dict[str, Any] = {"cells": {}}
    for cell in cells:
        seen["cells"][cell] = {
            "by_version": attempt(lambda: predict(predictions, cell, images, version=1)),
            "newest": attempt(lambda: predict(predictions, cell, images)),
            "typed": attempt(lambda: predict(predictions, cell, images, version=1, tensor=typed_uint8(images))),
            "metadata": attempt(lambda: metadata(predictions, cell)),
            "status": attempt(lambda: status(models, cell)),
            "status_v1": attempt(lambda: status(models, cell, 1)),
        }
    cell = cells[0]
    seen["by_label"] = {
        f"{model}@{label}": attempt(lambda: predict(predictions, model, images, label=label))
        for model, label in given["labels"]
    }
    seen["float32"] = attempt(lambda: predict(predictions, cell, (images / 255.0).astype(np.float32)))
    seen["png_strings"] = attempt(lambda: predict(predictions, cell, None, tensor=tf.make_tensor_proto(pngs)))
    seen["only_digit"] = attempt(lambda: predict(predictions, cell, images, output_filter=["digit"]))
    seen["errors"] = {
        "unknown_model": attempt(lambda: predict(predictions, "no-such-model", images)),
        "unknown_version": attempt(lambda: predict(predictions, cell, images, version=7)),
        "unknown_label": attempt(lambda: predict(predictions, cell, images, label="no-such-label")),
        "bad_shape": attempt(lambda: predict(predictions, cell, images.reshape(-1, 784))),
        "wrong_dtype": attempt(lambda: predict(predictions, cell, images.astype(np.int64))),
        "wrong_input_name": attempt(lambda: predict(predictions, cell, images, input_name="pixels")),
        "unknown_signature": attempt(lambda: predict(predictions, cell, images, signature="classify")),
        "unknown_output": attempt(lambda: predict(predictions, cell, images, output_filter=["logits"])),
        "unknown_model_status": attempt(lambda: status(models, "no-such-model")),
        "unknown_version_status": attempt(lambda: status(models, cell, 7)),
        "unknown_metadata_field": attempt(lambda: metadata(predictions, cell, ("graph",))),
        "classify": attempt(lambda: predictions.Classify(classification_pb2.ClassificationRequest(), timeout=TIMEOUT)),
        "regress": attempt(lambda: predictions.Regress(regression_pb2.RegressionRequest(), timeout=TIMEOUT)),
    }
    channel.close()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
