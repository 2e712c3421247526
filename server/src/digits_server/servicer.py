"""The gRPC servicer for digits.v1.DigitClassifier: a thin shell over the data plane.

Each method converts the request (codec), delegates (data plane / manager), converts the
result back. Status codes come only from `status.unary_rpc`.
"""

from __future__ import annotations

import time

import grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc

from . import codec
from .dataplane import DataPlane
from .domain import CallRecord
from .errors import ModelNotFound
from .metrics import ServerMetrics
from .settings import Settings
from .status import unary_rpc


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as a time.monotonic() value, or None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class DigitClassifierServicer(pb_grpc.DigitClassifierServicer):
    """Classify, ClassifyBatch, ListModels, GetModelStatus."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, settings: Settings) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.settings = settings

    @unary_rpc("Classify")
    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ClassifyResponse:
        selector = codec.selector(request.model_spec)
        images = codec.image(request.image, "image")[None]
        labels = [codec.true_label(request)]
        outcome = await self.dataplane.classify(
            selector, images, labels, request.request_id, call, deadline_of(context)
        )
        return codec.classify_response(outcome)

    @unary_rpc("ClassifyBatch")
    async def ClassifyBatch(
        self, request: pb.ClassifyBatchRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ClassifyBatchResponse:
        selector = codec.selector(request.model_spec)
        images = codec.images(request.images, "images", self.settings.max_batch_images)
        labels = codec.true_labels(request.true_labels, len(images))
        outcome = await self.dataplane.classify(
            selector, images, labels, request.request_id, call, deadline_of(context)
        )
        return codec.batch_response(outcome)

    @unary_rpc("ListModels")
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ListModelsResponse:
        return pb.ListModelsResponse(models=codec.model_statuses(self.dataplane.manager))

    @unary_rpc("GetModelStatus")
    async def GetModelStatus(
        self, request: pb.GetModelStatusRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ModelStatus:
        manager = self.dataplane.manager
        slots = manager.slots()
        name = request.name or manager.default_model
        if name not in slots:
            raise ModelNotFound(f"name: no model '{name}' (models: {', '.join(slots) or 'none'})")
        return codec.model_status(name, slots[name], name == manager.default_model, manager.labels_of)
