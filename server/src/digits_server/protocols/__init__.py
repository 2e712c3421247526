"""The ecosystem's protocols on the digits gRPC port, beside digits.v1, and on the REST port.

- `kserve_v2`: the Open Inference Protocol v2 (`inference.GRPCInferenceService`), as KServe
  and Triton clients speak it; `kserve_v2_codec` converts its messages.
- `tfserving`: TensorFlow Serving's `PredictionService` and `ModelService`; `tfserving_codec`.
- `naming` (model names -> selectors), `tensors` (input tensors -> images): shared by both.
- `kserve_v2_requests`: builds v2 requests and reads responses, for benchmarks and tools.
- REST (`--http-port`): `rest_server` (the aiohttp port: auth, deadlines, limits, errors, metrics,
  drain), `kserve_v2_rest` and `tfserving_rest` (their REST APIs over the same servicers), with
  `kserve_v2_rest_codec` / `tfserving_rest_codec` (JSON <-> their messages).
Their messages are generated from proto/digits_server/apis/ into `digits_server.apis`.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from digits_server.core.dataplane import DataPlane
from digits_server.observability.metrics import ServerMetrics
from digits_server.settings import Settings
from digits_server.transport.guarded_handlers import GuardedHandlers

if TYPE_CHECKING:
    from digits_server.protocols.rest_server import RestServer
    from digits_server.security.auth import Authorizer


def add_protocols(
    server: grpc.aio.Server | GuardedHandlers,
    dataplane: DataPlane,
    metrics: ServerMetrics,
    settings: Settings,
    reload: Callable[[], Awaitable[None]],
) -> list[str]:
    """Serve the v2 and TF Serving protocols on `server`; `reload` is the admin API's
    ReloadModels operation. Returns the full names of the services added."""
    # Imported here: the TF Serving messages import tensorflow, which only a serving process needs.
    from digits_server.apis import (
        inference_v2_pb2,
        inference_v2_pb2_grpc,
        tensorflow_serving_pb2,
        tensorflow_serving_pb2_grpc,
    )
    from digits_server.protocols.kserve_v2 import InferenceServicer
    from digits_server.protocols.tfserving import ModelServicer, PredictionServicer

    inference_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, metrics, settings, reload), server
    )
    tensorflow_serving_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(dataplane, metrics, settings), server
    )
    tensorflow_serving_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(dataplane, metrics), server)
    return [
        service.full_name
        for module in (inference_v2_pb2, tensorflow_serving_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
    ]


def rest_server(
    dataplane: DataPlane,
    metrics: ServerMetrics,
    settings: Settings,
    reload: Callable[[], Awaitable[None]],
    authorizer: "Authorizer",
    ssl_context: ssl.SSLContext | None,
) -> "RestServer":
    """The REST port (not started): v2 REST and TF Serving REST over servicers like the gRPC port's."""
    from digits_server.protocols.kserve_v2 import InferenceServicer
    from digits_server.protocols.kserve_v2_rest import InferenceRoutes
    from digits_server.protocols.rest_server import RestGate, RestServer
    from digits_server.protocols.tfserving import ModelServicer, PredictionServicer
    from digits_server.protocols.tfserving_rest import TFServingRoutes

    gate = RestGate()
    routes = [
        *InferenceRoutes(InferenceServicer(dataplane, metrics, settings, reload), gate).routes(),
        *TFServingRoutes(PredictionServicer(dataplane, metrics, settings), ModelServicer(dataplane, metrics)).routes(),
    ]
    return RestServer(routes, authorizer, metrics, settings.max_message_bytes, ssl_context, gate)
