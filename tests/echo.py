"""A DigitClassifier servicer that answers without any model: for tests of interceptors and
transport behaviour, where the serving core is not what is under test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc


class EchoClassifier(pb_grpc.DigitClassifierServicer):
    """Classify and ClassifyStream echo the request id; ListModels lists one model, "echo"."""

    async def Classify(self, request: pb.ClassifyRequest, context: grpc.aio.ServicerContext) -> pb.ClassifyResponse:
        """The request id back."""
        return pb.ClassifyResponse(request_id=request.request_id)

    async def ClassifyStream(
        self, requests: AsyncIterator[pb.ClassifyRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ClassifyResponse]:
        """Each request id back, in order (an async generator, like the real servicer)."""
        async for request in requests:
            yield pb.ClassifyResponse(request_id=request.request_id)

    async def ListModels(self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext) -> pb.ListModelsResponse:
        """One model named "echo"."""
        return pb.ListModelsResponse(models=[pb.ModelStatus(name="echo")])
