"""The gRPC servicer for digits.v1.DigitsAdmin: calls that change the server.

Thin like the inference servicer: it delegates and converts; status codes come from
`status.unary_rpc`. Methods not implemented here answer UNIMPLEMENTED (the generated base).
"""

from __future__ import annotations

import grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc

from . import codec
from .domain import CallRecord
from .metrics import ServerMetrics
from .reloader import Reloader
from .status import unary_rpc


class DigitsAdminServicer(pb_grpc.DigitsAdminServicer):
    """ReloadModels (experiment management is added by the experiment engine)."""

    def __init__(self, reloader: Reloader, metrics: ServerMetrics) -> None:
        self.reloader = reloader
        self.metrics = metrics

    @unary_rpc("ReloadModels")
    async def ReloadModels(
        self, request: pb.ReloadModelsRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> pb.ReloadModelsResponse:
        await self.reloader.reload_now()
        return pb.ReloadModelsResponse(models=codec.model_statuses(self.reloader.manager))
