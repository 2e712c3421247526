"""The ecosystem's protocols on the digits gRPC port, beside digits.v1, and on the REST port.

- `kserve_v2`: the Open Inference Protocol v2 (`inference.GRPCInferenceService`), as KServe
  and Triton clients speak it; `kserve_v2_codec` converts its messages.
- `tfserving`: TensorFlow Serving's `PredictionService` and `ModelService`; `tfserving_codec`;
  `tfserving_on_demand` serves them in a server without TensorFlow loaded (imported on first call).
- `naming` (model names -> selectors), `tensors` (input tensors -> images): shared by both.
- `kserve_v2_requests`: builds v2 requests and reads responses, for benchmarks and tools.
- REST (`--http-port`): `rest_server` (the aiohttp port: auth, deadlines, limits, errors, metrics,
  drain), `kserve_v2_rest` and `tfserving_rest` (their REST APIs over the same servicers), with
  `kserve_v2_rest_codec` / `tfserving_rest_codec` (JSON <-> their messages);
  `tfserving_rest_on_demand` declares the TF Serving REST routes and imports their handlers on
  the first call (a server without TensorFlow loaded; 501 naming the extra where it is not installed).
Their messages are generated from proto/digits_server/apis/ into `digits_server.apis`.
"""

from __future__ import annotations

import ssl
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import grpc

from digits_server.core.dataplane import DataPlane
from digits_server.core.litert_model import tensorflow_installed
from digits_server.core.tensorflow_startup import import_tensorflow_quietly
from digits_server.observability.metrics import ServerMetrics
from digits_server.protocols.tfserving_on_demand import SERVICES as TFSERVING_SERVICES
from digits_server.protocols.tfserving_on_demand import TensorFlowServingOnDemand
from digits_server.settings import Settings
from digits_server.transport.guarded_handlers import GuardedHandlers

if TYPE_CHECKING:
    from digits_server.protocols.rest_server import RestServer
    from digits_server.protocols.tfserving_rest import TFServingRoutes
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
    from digits_server.apis import inference_v2_pb2, inference_v2_pb2_grpc
    from digits_server.protocols.kserve_v2 import InferenceServicer

    inference_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(
        InferenceServicer(dataplane, metrics, settings, reload), server
    )

    def tfserving() -> GuardedHandlers:
        # Imported here: the TF Serving messages import tensorflow (see tfserving_on_demand), without
        # its native start-up notices, as at boot.
        import_tensorflow_quietly()
        from digits_server.apis import tensorflow_serving_pb2_grpc
        from digits_server.protocols.tfserving import ModelServicer, PredictionServicer

        services = GuardedHandlers(())
        tensorflow_serving_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(dataplane, metrics, settings), services
        )
        tensorflow_serving_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(dataplane, metrics), services)
        return services

    if "tensorflow" in sys.modules:  # a version serves with TensorFlow: its messages cost nothing more
        server.add_generic_rpc_handlers((tfserving(),))
    else:
        server.add_generic_rpc_handlers((
            TensorFlowServingOnDemand(tfserving, tensorflow_installed(), lambda: server.add_generic_rpc_handlers(())),
        ))
    return [
        *(service.full_name for service in inference_v2_pb2.DESCRIPTOR.services_by_name.values()),
        *TFSERVING_SERVICES,
    ]


def rest_server(
    dataplane: DataPlane,
    metrics: ServerMetrics,
    settings: Settings,
    reload: Callable[[], Awaitable[None]],
    authorizer: Authorizer,
    ssl_context: ssl.SSLContext | None,
) -> RestServer:
    """The REST port (not started): v2 REST and TF Serving REST over servicers like the gRPC port's."""
    from digits_server.protocols.kserve_v2 import InferenceServicer
    from digits_server.protocols.kserve_v2_rest import InferenceRoutes
    from digits_server.protocols.rest_server import RestGate, RestServer
    from digits_server.protocols.tfserving_rest_on_demand import TFServingRestOnDemand

    def tfserving_routes() -> TFServingRoutes:
        # Imported here: the TF Serving messages import tensorflow (see tfserving_rest_on_demand),
        # without its native start-up notices, as at boot.
        import_tensorflow_quietly()
        from digits_server.protocols.tfserving import ModelServicer, PredictionServicer
        from digits_server.protocols.tfserving_rest import TFServingRoutes

        return TFServingRoutes(PredictionServicer(dataplane, metrics, settings), ModelServicer(dataplane, metrics))

    tfserving = tfserving_routes() if "tensorflow" in sys.modules else (
        TFServingRestOnDemand(tfserving_routes, tensorflow_installed())
    )
    gate = RestGate()
    routes = [*InferenceRoutes(InferenceServicer(dataplane, metrics, settings, reload), gate).routes(),
              *tfserving.routes()]
    return RestServer(routes, authorizer, metrics, settings.max_message_bytes, ssl_context, gate)
