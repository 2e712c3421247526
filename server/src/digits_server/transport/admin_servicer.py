"""The gRPC servicer for digits.v1.DigitsAdmin: calls that change the server.

Thin like the inference servicer: it delegates and converts; status codes come from
`status.unary_rpc`. Methods not implemented here answer UNIMPLEMENTED (the generated base).
"""

from __future__ import annotations

import grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from digits_server.core.domain import CallRecord
from digits_server.core.reloader import Reloader
from digits_server.experiments.service import ExperimentService
from digits_server.observability.metrics import ServerMetrics
from digits_server.transport import codec
from digits_server.transport.status_codes import unary_rpc


class DigitsAdminServicer(pb_grpc.DigitsAdminServicer):
    """ReloadModels; CreateExperiment, UpdateExperiment, DeleteExperiment."""

    def __init__(self, reloader: Reloader, metrics: ServerMetrics, experiments: ExperimentService) -> None:
        self.reloader = reloader
        self.metrics = metrics
        self.experiments = experiments

    @unary_rpc("ReloadModels")
    async def ReloadModels(
        self, request: pb.ReloadModelsRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ReloadModelsResponse:
        await self.reloader.reload_now()
        return pb.ReloadModelsResponse(models=[codec.model_status(model) for model in self.reloader.manager.statuses()])

    @unary_rpc("CreateExperiment")
    async def CreateExperiment(
        self, request: pb.Experiment, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.Experiment:
        return codec.experiment_message(self.experiments.create(codec.experiment(request)))

    @unary_rpc("UpdateExperiment")
    async def UpdateExperiment(
        self, request: pb.Experiment, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.Experiment:
        return codec.experiment_message(self.experiments.update(codec.experiment_change(request)))

    @unary_rpc("DeleteExperiment")
    async def DeleteExperiment(
        self, request: pb.DeleteExperimentRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.DeleteExperimentResponse:
        self.experiments.delete(request.name)
        return pb.DeleteExperimentResponse()
