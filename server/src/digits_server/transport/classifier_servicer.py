"""The gRPC servicer for digits.v1.DigitClassifier: a thin shell over the data plane.

Each method converts the request (codec), delegates (data plane / manager), converts the
result back. Status codes come only from `status.unary_rpc`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core import imaging
from digits_server.core import ordered_streams as streaming
from digits_server.core.dataplane import DataPlane
from digits_server.core.domain import CallRecord
from digits_server.core.errors import ModelNotFound, NotFound, RequestNotFound
from digits_server.core.feedback import FeedbackStore
from digits_server.core.imaging import ImageLimits, cheap_to_decode
from digits_server.experiments.service import ExperimentService
from digits_server.observability.metrics import ServerMetrics
from digits_server.observability.monitor import LabelFreeMonitor
from digits_server.settings import Settings
from digits_server.transport import codec, stream_groups
from digits_server.transport.deadlines import deadline_of
from digits_server.transport.status_codes import stream_rpc, unary_rpc


class DigitClassifierServicer(pb_grpc.DigitClassifierServicer):
    """Classify, ClassifyBatch, ClassifyStream, ListModels, GetModelStatus, Feedback, ListExperiments,
    GetExperimentReport."""

    def __init__(
        self, dataplane: DataPlane, metrics: ServerMetrics, settings: Settings, *,
        feedback: FeedbackStore | None = None, experiments: ExperimentService | None = None,
        monitor: LabelFreeMonitor | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.settings = settings
        self.image_limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)
        self.feedback = feedback
        self.experiments = experiments
        self.monitor = monitor  # label-free monitoring: its view fills ModelVersionStatus.monitoring

    @unary_rpc("Classify")
    async def Classify(
        self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ClassifyResponse:
        return await self._classify_one(request, call, deadline_of(context))

    async def _classify_one(
        self, request: pb.ClassifyRequest, call: CallRecord, deadline: float | None
    ) -> pb.ClassifyResponse:
        selector = codec.selector(request.model_spec)
        codec.short_text(request.request_id, "request_id")
        picture = request.image
        if picture.WhichOneof("data") == "encoded":
            call.files = (picture.encoded,)  # the upload itself, for the payload log
        if call.files and not cheap_to_decode(call.files):
            image = await asyncio.to_thread(codec.image, picture, "image", self.image_limits)  # off the event loop
        else:
            image = codec.image(picture, "image", self.image_limits)
        labels = [codec.true_label(request)]
        outcome = await self.dataplane.classify(selector, image[None], labels, request.request_id, call, deadline)
        return codec.classify_response(outcome)

    @stream_rpc("ClassifyStream")
    async def ClassifyStream(
        self, request_iterator: AsyncIterator[pb.ClassifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyResponse]:
        """One response per request, in order. The messages that arrived while the previous group
        was computed and answered (up to max_batch_size) form the next group (`stream_groups`)."""
        deadline = deadline_of(context)
        async for group in streaming.grouped(request_iterator, self.settings.max_batch_size):
            answers, error = await stream_groups.classify_group(
                self.dataplane, self.metrics, self.image_limits, group, deadline
            )
            for answer in answers:
                yield answer
            if error is not None:
                raise error

    @unary_rpc("ClassifyBatch")
    async def ClassifyBatch(
        self, request: pb.ClassifyBatchRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ClassifyBatchResponse:
        selector = codec.selector(request.model_spec)
        codec.short_text(request.request_id, "request_id")
        encoded = any(image.WhichOneof("data") == "encoded" for image in request.images)
        images = await imaging.converted(
            encoded, lambda: codec.images(request.images, "images", self.settings.max_batch_images, self.image_limits),
        )
        if encoded:  # the uploads themselves (b"" for pixel images), for the payload log
            call.files = tuple(image.encoded for image in request.images)
        labels = codec.true_labels(request.true_labels, len(images))
        outcome = await self.dataplane.classify(
            selector, images, labels, request.request_id, call, deadline_of(context)
        )
        return codec.batch_response(outcome)

    @unary_rpc("ListModels")
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ListModelsResponse:
        monitoring = self.monitor.view if self.monitor is not None else None
        return pb.ListModelsResponse(
            models=[codec.model_status(model, monitoring) for model in self.dataplane.manager.statuses()]
        )

    @unary_rpc("GetModelStatus")
    async def GetModelStatus(
        self, request: pb.GetModelStatusRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ModelStatus:
        manager = self.dataplane.manager
        models = {model.name: model for model in manager.statuses()}
        name = request.name or manager.default_model
        if name not in models:
            raise ModelNotFound(f"name: no model '{name}' (models: {', '.join(models) or 'none'})")
        return codec.model_status(models[name], self.monitor.view if self.monitor is not None else None)

    @unary_rpc("Feedback")
    async def Feedback(
        self, request: pb.FeedbackRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.FeedbackResponse:
        request_id, index, true_label = codec.feedback_request(request)
        if self.feedback is None:
            raise RequestNotFound("request_id: this server remembers no predictions (no feedback store)")
        event = self.feedback.give(request_id, index, true_label)
        call.model, call.version = event.served_by.model, str(event.served_by.version)
        call.experiment, call.arm = event.served_by.experiment, event.served_by.arm
        return codec.feedback_response(event)

    @unary_rpc("ListExperiments")
    async def ListExperiments(
        self, request: pb.ListExperimentsRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ListExperimentsResponse:
        found = self.experiments.list() if self.experiments is not None else []
        return pb.ListExperimentsResponse(experiments=[codec.experiment_message(e) for e in found])

    @unary_rpc("GetExperimentReport")
    async def GetExperimentReport(
        self, request: pb.GetExperimentReportRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ExperimentReport:
        if self.experiments is None:
            raise NotFound(f"name: no experiment '{request.name}' (experiments: none)")
        return codec.experiment_report(self.experiments.report(request.name, request.verdict_basis))
