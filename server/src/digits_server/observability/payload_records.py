"""What the payload log writes: one JSON record per request and per feedback, and the same
records as CloudEvents in the shape KServe's logger posts them.

A prediction record (one per request, `"event": "prediction"`):

    {"event": "prediction", "id": "<request id>", "time": "2026-12-05T12:00:00.123456Z",
     "model": "lstm", "version": 3, "experiment": "", "arm": "", "protocol": "digits.v1",
     "method": "Classify", "inputs": [{"pixels": "<base64 of 784 bytes>"} | {"file": "<base64>"}],
     "true_labels": [null], "digits": [7], "probabilities": [[0.0001, ...]]}

`inputs[i]` is image i as the caller sent it: the uploaded file (PNG, JPEG, ...) when the
transport kept it, else the 28x28 uint8 pixels the model was given (row-major). A feedback
record (`"event": "feedback"`) has the same id, who served, `index`, `true_label` and `predicted`.

Records are built in the writer's thread from the events the request path queued (no JSON or
base64 work on the request path).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import numpy as np

from digits_server.core.domain import FeedbackEvent, PredictionEvent

PREDICTION, FEEDBACK = "prediction", "feedback"
# The CloudEvents types: KServe's logger's for a request and a response, Seldon's for feedback.
CE_REQUEST = "org.kubeflow.serving.inference.request"
CE_RESPONSE = "org.kubeflow.serving.inference.response"
CE_FEEDBACK = "org.kubeflow.serving.feedback"
CE_SPEC_VERSION = "1.0"
# Header values are percent-encoded outside printable ASCII (CloudEvents HTTP binding, 3.1.3.2).
_HEADER_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '%"') + " "

# A queued item: (event kind, wall-clock seconds, the event, the request's index in a group event or -1).
Pending = tuple[str, float, "PredictionEvent | FeedbackEvent", int]
Record = dict[str, Any]


def rfc3339(seconds: float) -> str:
    """Wall-clock seconds as an RFC 3339 UTC timestamp with microseconds."""
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((seconds - whole) * 1e6):06d}Z"


def build(item: Pending) -> Record:
    """The JSON-ready record of a queued item."""
    kind, at, event, index = item
    if kind == FEEDBACK:
        assert isinstance(event, FeedbackEvent)
        return feedback_record(event, at)
    assert isinstance(event, PredictionEvent)
    return prediction_record(event.one(index) if index >= 0 else event, at)


def weight(item: Pending) -> int:
    """What a queued item counts against the queue's capacity: its images (a feedback: 1)."""
    kind, _, event, index = item
    return len(event.digits) if kind == PREDICTION and index < 0 else 1  # type: ignore[union-attr]


def _served(event: PredictionEvent | FeedbackEvent, at: float) -> Record:
    served = event.served_by
    return {
        "id": event.request_id, "time": rfc3339(at), "model": served.model, "version": served.version,
        "experiment": served.experiment, "arm": served.arm,
    }


def prediction_record(event: PredictionEvent, at: float) -> Record:
    """One request's record: who served, what came in, what was predicted."""
    record = {"event": PREDICTION, **_served(event, at), "protocol": event.protocol, "method": event.method}
    record["inputs"] = inputs(event.images, event.files)
    record["true_labels"] = list(event.true_labels)
    record["digits"] = np.asarray(event.digits).astype(int).tolist()
    # float32 -> 7 significant digits (what float32 holds) without float64's long tails
    record["probabilities"] = [[float(f"{p:.7g}") for p in row] for row in np.asarray(event.probabilities).tolist()]
    return record


def inputs(images: np.ndarray | None, files: Sequence[bytes]) -> list[dict[str, str]]:
    """Each image as the caller sent it: {"file": base64} for an upload, else {"pixels": base64}."""
    if images is None:
        return []
    out = []
    for i in range(len(images)):
        if i < len(files) and files[i]:
            out.append({"file": base64.b64encode(files[i]).decode("ascii")})
        else:
            out.append({"pixels": base64.b64encode(np.ascontiguousarray(images[i], np.uint8).tobytes()).decode("ascii")})
    return out


def feedback_record(event: FeedbackEvent, at: float) -> Record:
    """A true digit learned later for image `index` of an earlier request."""
    return {
        "event": FEEDBACK, **_served(event, at), "index": event.index,
        "true_label": event.true_label, "predicted": int(event.predicted),
    }


def json_line(record: Record) -> bytes:
    """A record as one line of JSON Lines."""
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def header(value: str) -> str:
    """A CloudEvents attribute as an HTTP header value (percent-encoded outside printable ASCII)."""
    return quote(value, safe=_HEADER_SAFE)


def cloud_events(record: Record, source: str) -> list[tuple[dict[str, str], bytes]]:
    """A record as CloudEvents in binary content mode: (headers, JSON body) per event.

    A prediction is two events, like KServe's logger: the request (its inputs) and the response
    (the prediction), both with ce-id = the request id. A feedback is one event."""
    common = {
        "ce-specversion": CE_SPEC_VERSION, "ce-id": header(record["id"]), "ce-source": source,
        "ce-time": record["time"], "content-type": "application/json",
        "ce-inferenceservicename": header(record["model"]), "ce-modelversion": str(record["version"]),
        "ce-experiment": header(record["experiment"]), "ce-arm": header(record["arm"]),
    }
    served = {key: record[key] for key in ("id", "model", "version", "experiment", "arm")}
    if record["event"] == FEEDBACK:
        body = {**served, "index": record["index"], "true_label": record["true_label"], "predicted": record["predicted"]}
        return [({**common, "ce-type": CE_FEEDBACK}, _body(body))]
    request = {**served, "protocol": record["protocol"], "method": record["method"], "inputs": record["inputs"],
               "true_labels": record["true_labels"]}
    response = {**served, "digits": record["digits"], "probabilities": record["probabilities"]}
    return [({**common, "ce-type": CE_REQUEST}, _body(request)), ({**common, "ce-type": CE_RESPONSE}, _body(response))]


def _body(value: Record) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
