"""TensorFlow Serving's servicers (`tensorflow.serving.PredictionService`, `ModelService`): thin shells.

Each method converts (tfserving_codec), delegates (data plane, manager) and converts back;
status codes come from `status.unary_rpc`, so errors, metrics (protocol label "tfserving")
and batching are those of digits.v1.
"""

from __future__ import annotations

import grpc

from digits_server.apis import tensorflow_serving_pb2 as tfs
from digits_server.apis import tensorflow_serving_pb2_grpc as tfs_grpc
from digits_server.core import imaging
from digits_server.core.dataplane import DataPlane
from digits_server.core.domain import CallRecord, ServedBy
from digits_server.core.errors import ModelNotFound, NotSupported
from digits_server.core.imaging import ImageLimits
from digits_server.observability.metrics import ServerMetrics
from digits_server.protocols import naming
from digits_server.protocols import tfserving_codec as codec
from digits_server.settings import Settings
from digits_server.transport.deadlines import deadline_of
from digits_server.transport.status_codes import unary_rpc

PROTOCOL = "tfserving"
EXAMPLE_APIS = (
    "{method}: not supported; these models take images, not tf.Examples: call Predict with "
    "inputs {{'images': uint8 [N,28,28]}} (or float32 in [0,1], or encoded PNG/JPEG strings [N])"
)


class PredictionServicer(tfs_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata; the tf.Example APIs answer UNIMPLEMENTED."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics, settings: Settings) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.settings = settings
        self.image_limits = ImageLimits(settings.max_image_bytes, settings.max_image_pixels)

    @unary_rpc("Predict", PROTOCOL)
    async def Predict(
        self, request: tfs.PredictRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.PredictResponse:
        chosen = codec.selector(request.model_spec, self.dataplane.manager.slots())
        inputs = dict(request.inputs)
        images, packed = await imaging.converted(
            codec.is_encoded(inputs), lambda: codec.images(inputs, self.settings.max_batch_images, self.image_limits)
        )
        outcome = await naming.classify(
            self.dataplane, chosen, images, "", call, deadline_of(context), "model_spec.name"
        )
        return codec.predict_response(outcome, list(request.output_filter), packed)

    @unary_rpc("GetModelMetadata", PROTOCOL)
    async def GetModelMetadata(
        self, request: tfs.GetModelMetadataRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.GetModelMetadataResponse:
        chosen = codec.selector(request.model_spec, (), experiments=False)  # metadata is a model's
        model = self.dataplane.manager.resolve(chosen)
        call.model, call.version = model.name, str(model.version)
        return codec.metadata_response(request, ServedBy(model.name, model.version))

    @unary_rpc("Classify", PROTOCOL)
    async def Classify(
        self, request: tfs.ClassificationRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.ClassificationResponse:
        raise NotSupported(EXAMPLE_APIS.format(method="Classify"))

    @unary_rpc("Regress", PROTOCOL)
    async def Regress(
        self, request: tfs.RegressionRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.RegressionResponse:
        raise NotSupported(EXAMPLE_APIS.format(method="Regress"))

    @unary_rpc("MultiInference", PROTOCOL)
    async def MultiInference(
        self, request: tfs.MultiInferenceRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.MultiInferenceResponse:
        raise NotSupported(EXAMPLE_APIS.format(method="MultiInference"))


class ModelServicer(tfs_grpc.ModelServiceServicer):
    """GetModelStatus with TF Serving's state names."""

    def __init__(self, dataplane: DataPlane, metrics: ServerMetrics) -> None:
        self.dataplane = dataplane
        self.metrics = metrics

    @unary_rpc("GetModelStatus", PROTOCOL)
    async def GetModelStatus(
        self, request: tfs.GetModelStatusRequest, context: grpc.aio.ServicerContext, call: CallRecord
    ) -> tfs.GetModelStatusResponse:
        manager = self.dataplane.manager
        spec = request.model_spec
        name = spec.name or manager.default_model
        models = manager.slots()
        if name not in models:
            raise ModelNotFound(f"model_spec.name: no model '{name}' (models: {', '.join(models) or 'none'})")
        slots = models[name]
        chosen = codec.selector(spec, models, experiments=False)
        version = chosen.version
        if chosen.version_label:
            version = manager.labels.get(name, {}).get(chosen.version_label)
            if version is None:
                raise ModelNotFound(f"model_spec.version_label: model '{name}' has no label '{chosen.version_label}'")
        if version is not None:
            slots = [slot for slot in slots if slot.version == version]
            if not slots:
                raise ModelNotFound(f"model_spec.version: model '{name}' has no version {version}")
        call.model = name
        return tfs.GetModelStatusResponse(model_version_status=[codec.version_status(slot) for slot in slots])

