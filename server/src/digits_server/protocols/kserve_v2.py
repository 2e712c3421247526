"""The Open Inference Protocol v2 servicer (`inference.GRPCInferenceService`): a thin shell.

Each method converts (kserve_v2_codec), delegates (data plane, manager, the reload
operation of the admin API) and converts back; status codes come from `status.unary_rpc`,
so errors, metrics (protocol label "kserve.v2") and batching are those of digits.v1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc

from digits_server import __version__
from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import inference_v2_pb2_grpc as v2_grpc
from digits_server.core import imaging
from digits_server.core.dataplane import DataPlane
from digits_server.core.domain import CallRecord, ModelSelector
from digits_server.core.errors import InvalidInput, ModelNotFound, ModelUnavailable, NotSupported
from digits_server.core.imaging import ImageLimits
from digits_server.core.manager import AVAILABLE, VersionSlot
from digits_server.observability.metrics import ServerMetrics
from digits_server.protocols import kserve_v2_codec as codec
from digits_server.protocols import naming
from digits_server.settings import Settings
from digits_server.transport.deadlines import deadline_of
from digits_server.transport.status_codes import unary_rpc

PROTOCOL = "kserve.v2"
SERVER_NAME = "digits-server"
EXTENSIONS = ("model_repository",)


class InferenceServicer(v2_grpc.GRPCInferenceServiceServicer):
    """Health, metadata, inference and the model repository extension of the v2 protocol."""

    def __init__(
        self, dataplane: DataPlane, metrics: ServerMetrics, settings: Settings, reload: Callable[[], Awaitable[None]]
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.settings = settings
        self.reload = reload  # the admin API's ReloadModels operation
        self.image_limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)

    def _models(self) -> dict[str, list[VersionSlot]]:
        return self.dataplane.manager.slots()

    @unary_rpc("ServerLive", PROTOCOL)
    async def ServerLive(
        self, request: v2.ServerLiveRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ServerLiveResponse:
        return v2.ServerLiveResponse(live=True)

    @unary_rpc("ServerReady", PROTOCOL)
    async def ServerReady(
        self, request: v2.ServerReadyRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ServerReadyResponse:
        ready = any(slot.state == AVAILABLE for slots in self._models().values() for slot in slots)
        return v2.ServerReadyResponse(ready=ready)

    @unary_rpc("ModelReady", PROTOCOL)
    async def ModelReady(
        self, request: v2.ModelReadyRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ModelReadyResponse:
        number, label = codec.version_of(request.version, "version")
        try:
            self.dataplane.manager.resolve(ModelSelector(request.name, number, label))
        except (ModelNotFound, ModelUnavailable):
            return v2.ModelReadyResponse(ready=False)
        return v2.ModelReadyResponse(ready=True)

    @unary_rpc("ServerMetadata", PROTOCOL)
    async def ServerMetadata(
        self, request: v2.ServerMetadataRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ServerMetadataResponse:
        return v2.ServerMetadataResponse(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)

    @unary_rpc("ModelMetadata", PROTOCOL)
    async def ModelMetadata(
        self, request: v2.ModelMetadataRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ModelMetadataResponse:
        models = self._models()
        name = request.name or self.dataplane.manager.default_model
        if name not in models:
            raise ModelNotFound(f"name: no model '{name}' (models: {', '.join(models) or 'none'})")
        if request.version:  # the version (or label) must exist; its metadata is every version's
            number, label = codec.version_of(request.version, "version")
            self.dataplane.manager.resolve(ModelSelector(name, number, label))
        call.model = name
        return codec.model_metadata(name, [slot.version for slot in models[name] if slot.state == AVAILABLE])

    @unary_rpc("ModelInfer", PROTOCOL)
    async def ModelInfer(
        self, request: v2.ModelInferRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.ModelInferResponse:
        chosen = codec.selector(request.model_name, request.model_version, self._models())
        images, raw = await imaging.converted(
            codec.is_encoded(request), lambda: codec.images(request, self.settings.max_batch_images, self.image_limits)
        )
        outputs = codec.requested_outputs(request)
        outcome = await naming.classify(
            self.dataplane, chosen, images, request.id, call, deadline_of(context), "model_name"
        )
        return codec.infer_response(outcome, outcome.request_id, outputs, raw)

    @unary_rpc("RepositoryModelLoad", PROTOCOL)
    async def RepositoryModelLoad(
        self, request: v2.RepositoryModelLoadRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.RepositoryModelLoadResponse:
        name = request.triton_model_name or request.model_name
        if not name:
            raise InvalidInput("model_name: required (the model folder's name)")
        await self.reload()
        slots = self._models().get(name)
        if not slots:
            known = ", ".join(self._models()) or "none"
            raise ModelNotFound(f"model_name: no model '{name}' in the model repository (models: {known})")
        if not any(slot.state == AVAILABLE for slot in slots):
            errors = "; ".join(f"version {s.version}: {s.state} {s.error}".strip() for s in slots)
            raise ModelUnavailable(f"model '{name}' has no available version ({errors})")
        call.model = name
        return v2.RepositoryModelLoadResponse(model_name=name, isLoaded=True)

    @unary_rpc("RepositoryModelUnload", PROTOCOL)
    async def RepositoryModelUnload(
        self, request: v2.RepositoryModelUnloadRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> v2.RepositoryModelUnloadResponse:
        raise NotSupported(
            "RepositoryModelUnload: not supported; this server serves the models its repository holds, "
            "with versions chosen by the version policy (--model-config), and unloads none on request; "
            "RepositoryModelLoad (like ReloadModels) rescans the repository"
        )

