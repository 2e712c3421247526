"""TensorFlow Serving's REST API, on the REST port: a thin shell over the gRPC servicers.

    POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    (row "instances" or columnar "inputs")
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            (status, like ModelService.GetModelStatus)
    GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   (the serving_default signature)

Each route converts (tfserving_rest_codec), runs the gRPC servicer's method body
(`<Servicer>.<Method>.__wrapped__`, without its gRPC wrapper; rest_server.rest_call wraps it for
HTTP instead) and converts back, so selection (a bare name may be an experiment's, as on gRPC),
batching and errors are the gRPC adapter's. Importing it imports TensorFlow (the codec uses its
messages): the REST port reaches it through tfserving_rest_on_demand, on the first call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from aiohttp import web

from digits_server.apis import tensorflow_serving_pb2 as tfs
from digits_server.protocols import tfserving_rest_codec as codec
from digits_server.protocols.rest_server import RestContext, RestRoute
from digits_server.protocols.tfserving import ModelServicer, PredictionServicer
from digits_server.protocols.tfserving_rest_on_demand import tfserving_rest_routes


def _body(servicer: type, method: str) -> Callable[..., Any]:
    """A servicer's method body without its gRPC wrapper (status_codes.unary_rpc keeps it as __wrapped__)."""
    return getattr(servicer, method).__wrapped__


def _spec(request: web.Request) -> tfs.ModelSpec:
    info = request.match_info
    return codec.model_spec(info["name"], info.get("version", ""), info.get("label", ""))


class TFServingRoutes:
    """The TF Serving REST endpoints of one pair of servicers."""

    def __init__(self, prediction: PredictionServicer, models: ModelServicer) -> None:
        self.prediction = prediction
        self.models = models

    async def predict(self, request: web.Request, context: RestContext) -> web.Response:
        message, fmt = codec.predict_request(await request.read(), _spec(request))
        answer = await _body(PredictionServicer, "Predict")(self.prediction, message, context, context.call)
        return web.Response(body=orjson.dumps(codec.predict_body(answer, fmt)), content_type="application/json")

    async def status(self, request: web.Request, context: RestContext) -> web.Response:
        message = tfs.GetModelStatusRequest(model_spec=_spec(request))
        answer = await _body(ModelServicer, "GetModelStatus")(self.models, message, context, context.call)
        return web.json_response(codec.as_json(answer))

    async def metadata(self, request: web.Request, context: RestContext) -> web.Response:
        message = tfs.GetModelMetadataRequest(model_spec=_spec(request), metadata_field=["signature_def"])
        answer = await _body(PredictionServicer, "GetModelMetadata")(self.prediction, message, context, context.call)
        return web.json_response(codec.metadata_body(answer))

    def routes(self) -> list[RestRoute]:
        """Every TF Serving REST endpoint with the gRPC method it stands for."""
        return tfserving_rest_routes(self.predict, self.status, self.metadata)
