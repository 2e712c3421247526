"""ClassifyStream's messages answered as groups: whatever messages of one stream have already
arrived (up to max_batch_size, `ordered_streams.grouped`) are decoded together and go through
the data plane as one group per model: one model call, one metrics pass, one observer pass, with
each message's own request id and true label, answered in order.

A message that fails validation (or whose model call fails) ends the stream with its code and
"stream message N: ..." once every earlier message was answered, as before grouping. Messages
routed through an A/B experiment are classified one by one (each is routed on its own).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np

from digits.v1 import digits_pb2 as pb
from digits_server.core import imaging
from digits_server.core.dataplane import DataPlane
from digits_server.core.domain import BatchOutcome, CallRecord, ModelSelector
from digits_server.core.errors import ServingError
from digits_server.core.ordered_streams import Group
from digits_server.observability.metrics import ServerMetrics
from digits_server.transport import codec
from digits_server.transport.status_codes import code_of

METHOD = "ClassifyStream"
Answers = tuple[list[pb.ClassifyResponse], ServingError | None]


class _Run:
    """Consecutive valid messages of a group with the same model spec."""

    __slots__ = ("selector", "spec", "start", "pixels", "encoded", "labels", "ids")

    def __init__(self, selector: ModelSelector, spec: bytes, start: int) -> None:
        self.selector, self.spec, self.start = selector, spec, start
        self.pixels: list[bytes] = []
        self.encoded: list[tuple[int, bytes]] = []  # (position in the run, file) of uploaded images
        self.labels: list[int | None] = []
        self.ids: list[str] = []


def _decode(requests: Sequence[pb.ClassifyRequest], first: int) -> tuple[list[_Run], ServingError | None, int]:
    """Split a group into runs; stop at the first invalid message: (runs, its error, its index in the group)."""
    runs: list[_Run] = []
    selectors: dict[bytes, ModelSelector] = {}
    for i, request in enumerate(requests):
        try:
            spec = request.model_spec.SerializeToString()
            selector = selectors.get(spec)
            if selector is None:
                selector = selectors[spec] = codec.selector(request.model_spec)
            codec.short_text(request.request_id, "request_id")
            label = codec.true_label(request)
            image = request.image
            kind = image.WhichOneof("data")
            if kind == "pixels" and len(image.pixels) == imaging.PIXELS:
                pixels, encoded = image.pixels, None
            elif kind == "encoded":
                if not image.encoded:
                    imaging.from_encoded(image.encoded, "image.encoded")  # raises the usual error
                pixels, encoded = b"", image.encoded
            else:
                pixels, encoded = codec.image(image, "image").tobytes(), None
        except ServingError as exc:
            return runs, type(exc)(f"stream message {first + i}: {exc}"), i
        if not runs or runs[-1].spec != spec or selector.experiment:
            runs.append(_Run(selector, spec, i))
        run = runs[-1]
        if encoded is not None:
            run.encoded.append((len(run.pixels), encoded))
        run.pixels.append(pixels)
        run.labels.append(label)
        run.ids.append(request.request_id)
    return runs, None, len(requests)


def _images(run: _Run, limits: imaging.ImageLimits) -> tuple[np.ndarray, ServingError | None]:
    """The run's images as uint8 [N,28,28], uploaded files decoded here. A file that does not
    decode cuts the run before its message: (the images before it, its error)."""
    error = None
    for position, data in run.encoded:
        try:
            run.pixels[position] = imaging.from_encoded(data, "image.encoded", limits).tobytes()
        except ServingError as exc:
            error = exc
            del run.pixels[position:], run.labels[position:], run.ids[position:]
            break
    images = np.frombuffer(b"".join(run.pixels), dtype=np.uint8).reshape(len(run.pixels), imaging.SIDE, imaging.SIDE)
    return images, error


def responses(outcome: BatchOutcome) -> list[pb.ClassifyResponse]:
    """One ClassifyResponse per request of a group outcome."""
    served_by = codec.served_by(outcome.served_by)
    return [
        pb.ClassifyResponse(digit=digit, probabilities=row, served_by=served_by, request_id=request_id)
        for digit, row, request_id in zip(outcome.digits.tolist(), outcome.probabilities.tolist(), outcome.request_ids)
    ]


async def classify_group(
    dataplane: DataPlane, metrics: ServerMetrics, limits: imaging.ImageLimits, group: Group[pb.ClassifyRequest],
    deadline: float | None,
) -> Answers:
    """The answers to a group's messages, in order, up to the first failure, and that failure (or None)."""
    runs, error, failed_at = _decode(group.items, group.first)
    answers: list[pb.ClassifyResponse] = []
    for run in runs:
        call = CallRecord(METHOD)
        try:
            inline = imaging.cheap_to_decode(data for _, data in run.encoded)  # else off the event loop
            images, bad = _images(run, limits) if inline else await asyncio.to_thread(_images, run, limits)
            if bad is not None:
                at = run.start + len(run.ids)
                error, failed_at = type(bad)(f"stream message {group.first + at}: {bad}"), at
                if not run.ids:
                    break
            if run.encoded:  # the uploads themselves (b"" for pixel images), for the payload log
                files = [b""] * len(run.ids)
                for position, data in run.encoded:
                    if position < len(files):
                        files[position] = data
                call.files = tuple(files)
            if run.selector.experiment:
                outcome = await dataplane.classify(run.selector, images, run.labels, run.ids[0], call, deadline)
                answers.append(codec.classify_response(outcome))
            else:
                outcome = await dataplane.classify_group(run.selector, images, run.labels, run.ids, call, deadline)
                answers.extend(responses(outcome))
        except ServingError as exc:
            error, failed_at = type(exc)(f"stream message {group.first + run.start}: {exc}"), run.start
            break
        now = time.perf_counter()
        metrics.observe_requests(call, "OK", [now - at for at in group.arrived[run.start: run.start + len(run.ids)]])
        if error is not None:
            break
    if error is not None:
        metrics.observe_request(CallRecord(METHOD), code_of(error).name, time.perf_counter() - group.arrived[failed_at])
    return answers, error
