"""The Open Inference Protocol v2 REST API, on the REST port: a thin shell over the gRPC servicer.

Each route converts the HTTP request into the v2 message (kserve_v2_rest_codec), runs the same
servicer body the gRPC port runs (`InferenceServicer.<Method>.__wrapped__`: the method without
its gRPC wrapper; rest_server.rest_call wraps it for HTTP instead) and converts the answer back.
So names, versions, labels (`/versions/stable` is a label, as on gRPC), experiments, batching and
errors are the gRPC adapter's. Liveness and readiness answer 200 for true and 400 for false, as
OIP says; readiness is false while the server drains.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.protocols import kserve_v2_rest_codec as codec
from digits_server.protocols.kserve_v2 import InferenceServicer
from digits_server.protocols.rest_server import RestContext, RestGate, RestRoute

PROTOCOL = "kserve.v2.rest"
SERVICE = "/inference.GRPCInferenceService/"
MODEL = "/v2/models/{name}"
VERSION = "/v2/models/{name}/versions/{version}"


def _body(method: str) -> Callable[..., Any]:
    """The servicer's method body without its gRPC wrapper (status_codes.unary_rpc keeps it as __wrapped__)."""
    return getattr(InferenceServicer, method).__wrapped__


def _boolean(key: str, value: bool, **extra: Any) -> web.Response:
    return web.json_response({**extra, key: value}, status=200 if value else 400)


class InferenceRoutes:
    """The v2 REST endpoints of one servicer."""

    def __init__(self, servicer: InferenceServicer, gate: RestGate) -> None:
        self.servicer = servicer
        self.gate = gate

    async def _run(self, method: str, request: Any, context: RestContext) -> Any:
        return await _body(method)(self.servicer, request, context, context.call)

    async def live(self, request: web.Request, context: RestContext) -> web.Response:
        answer = await self._run("ServerLive", v2.ServerLiveRequest(), context)
        return _boolean("live", answer.live)

    async def ready(self, request: web.Request, context: RestContext) -> web.Response:
        answer = await self._run("ServerReady", v2.ServerReadyRequest(), context)
        return _boolean("ready", answer.ready and not self.gate.closed)

    async def server_metadata(self, request: web.Request, context: RestContext) -> web.Response:
        answer = await self._run("ServerMetadata", v2.ServerMetadataRequest(), context)
        return web.json_response({"name": answer.name, "version": answer.version, "extensions": list(answer.extensions)})

    async def model_metadata(self, request: web.Request, context: RestContext) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        answer = await self._run("ModelMetadata", v2.ModelMetadataRequest(name=name, version=version), context)
        return web.json_response(codec.model_metadata(answer))

    async def model_ready(self, request: web.Request, context: RestContext) -> web.Response:
        name, version = request.match_info["name"], request.match_info.get("version", "")
        answer = await self._run("ModelReady", v2.ModelReadyRequest(name=name, version=version), context)
        return _boolean("ready", answer.ready, name=name)

    async def infer(self, request: web.Request, context: RestContext) -> web.Response:
        decoded = codec.infer_request(
            await request.read(),
            request.headers.get(codec.HEADER_LENGTH),
            request.match_info["name"],
            request.match_info.get("version", ""),
        )
        if decoded.timeout_seconds is not None:
            context.tighten(decoded.timeout_seconds)
        answer = await self._run("ModelInfer", decoded.message, context)
        body, header_length = codec.infer_response(answer, decoded)
        if header_length is None:
            return web.Response(body=body, content_type=codec.JSON_TYPE)
        return web.Response(
            body=body, content_type=codec.BINARY_TYPE, headers={codec.HEADER_LENGTH: str(header_length)}
        )

    async def load(self, request: web.Request, context: RestContext) -> web.Response:
        message = v2.RepositoryModelLoadRequest(model_name=request.match_info["name"])
        await self._run("RepositoryModelLoad", message, context)
        return web.json_response({})

    async def unload(self, request: web.Request, context: RestContext) -> web.Response:
        message = v2.RepositoryModelUnloadRequest(model_name=request.match_info["name"])
        await self._run("RepositoryModelUnload", message, context)
        return web.json_response({})

    def routes(self) -> list[RestRoute]:
        """Every v2 REST endpoint with the gRPC method it stands for."""

        def route(verb: str, path: str, method: str, handler: Any, gated: bool = True) -> RestRoute:
            return RestRoute(verb, path, SERVICE + method, PROTOCOL, handler, gated)

        return [
            route("GET", "/v2/health/live", "ServerLive", self.live, gated=False),
            route("GET", "/v2/health/ready", "ServerReady", self.ready, gated=False),
            route("GET", "/v2", "ServerMetadata", self.server_metadata),
            *(route("GET", base, "ModelMetadata", self.model_metadata) for base in (MODEL, VERSION)),
            *(route("GET", base + "/ready", "ModelReady", self.model_ready) for base in (MODEL, VERSION)),
            *(route("POST", base + "/infer", "ModelInfer", self.infer) for base in (MODEL, VERSION)),
            route("POST", "/v2/repository/models/{name}/load", "RepositoryModelLoad", self.load),
            route("POST", "/v2/repository/models/{name}/unload", "RepositoryModelUnload", self.unload),
        ]
