"""The ecosystem's protocols on the digits gRPC port, beside digits.v1.

- `kserve_v2`: the Open Inference Protocol v2 (`inference.GRPCInferenceService`), as KServe
  and Triton clients speak it; `kserve_v2_codec` converts its messages.
- `tfserving`: TensorFlow Serving's `PredictionService` and `ModelService`; `tfserving_codec`;
  `tfserving_on_demand` serves them in a server without TensorFlow loaded (imported on first call).
- `naming` (model names -> selectors), `tensors` (input tensors -> images): shared by both.
- `kserve_v2_requests`: builds v2 requests and reads responses, for benchmarks and tools.
Their messages are generated from proto/digits_server/apis/ into `digits_server.apis`.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable

import grpc

from digits_server.core.dataplane import DataPlane
from digits_server.core.litert_model import tensorflow_installed
from digits_server.observability.metrics import ServerMetrics
from digits_server.protocols.tfserving_on_demand import SERVICES as TFSERVING_SERVICES
from digits_server.protocols.tfserving_on_demand import TensorFlowServingOnDemand
from digits_server.settings import Settings
from digits_server.transport.guarded_handlers import GuardedHandlers


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
        # Imported here: the TF Serving messages import tensorflow (see tfserving_on_demand).
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
