"""TensorFlow Serving's REST API on the REST port of a server that runs without TensorFlow.

The REST routes' paths and gRPC method names (the scopes, the metrics labels) need nothing of
TensorFlow, so `TFServingRestOnDemand` declares them at start; its handlers import the real ones
(tfserving_rest, whose codec uses TensorFlow's messages) on the first TF Serving REST call, in a
thread (the event loop keeps serving), and hand every call to them from then on. Where TensorFlow
is not installed, every call gets 501 (UNIMPLEMENTED) naming the extra to install, as the gRPC
stand-in (tfserving_on_demand) answers; v2 REST serves either way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from digits_server.core.errors import NotSupported
from digits_server.protocols.rest_server import RestContext, RestHandler, RestRoute
from digits_server.protocols.tfserving_on_demand import NOT_INSTALLED

if TYPE_CHECKING:
    from digits_server.protocols.tfserving_rest import TFServingRoutes

PROTOCOL = "tfserving.rest"
PREDICTION = "/tensorflow.serving.PredictionService/"
MODEL = "/tensorflow.serving.ModelService/"
# A name, version or label never holds "/" or ":" (":predict" ends the path).
BASES = ("/v1/models/{name:[^/:]+}", "/v1/models/{name:[^/:]+}/versions/{version:[^/:]+}",
         "/v1/models/{name:[^/:]+}/labels/{label:[^/:]+}")


def tfserving_rest_routes(predict: RestHandler, status: RestHandler, metadata: RestHandler) -> list[RestRoute]:
    """Every TF Serving REST endpoint with the gRPC method it stands for (its scope and metrics label)."""
    return [
        *(RestRoute("POST", base + ":predict", PREDICTION + "Predict", PROTOCOL, predict) for base in BASES),
        *(RestRoute("GET", base, MODEL + "GetModelStatus", PROTOCOL, status) for base in BASES),
        *(RestRoute("GET", base + "/metadata", PREDICTION + "GetModelMetadata", PROTOCOL, metadata) for base in BASES),
    ]


class TFServingRestOnDemand:
    """The TF Serving REST endpoints, whose real handlers (`make_routes()`, which imports TensorFlow's
    messages) are built on the first call; `installed` is False where TensorFlow is not: 501."""

    def __init__(self, make_routes: Callable[[], TFServingRoutes], installed: bool) -> None:
        self._make_routes = make_routes
        self._installed = installed
        self._real: TFServingRoutes | None = None
        self._adding: asyncio.Future | None = None

    async def _routes(self) -> TFServingRoutes:
        if self._real is not None:
            return self._real
        if not self._installed:
            raise NotSupported(f"tensorflow.serving REST: {NOT_INSTALLED}")
        if self._adding is None:  # the first caller starts the import; the others wait for it
            self._adding = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(None, self._make_routes))
        self._real = await asyncio.shield(self._adding)
        return self._real

    async def predict(self, request: web.Request, context: RestContext) -> web.Response:
        """POST ...:predict, by the real handler."""
        return await (await self._routes()).predict(request, context)

    async def status(self, request: web.Request, context: RestContext) -> web.Response:
        """GET /v1/models/{name}..., by the real handler."""
        return await (await self._routes()).status(request, context)

    async def metadata(self, request: web.Request, context: RestContext) -> web.Response:
        """GET .../metadata, by the real handler."""
        return await (await self._routes()).metadata(request, context)

    def routes(self) -> list[RestRoute]:
        """Every TF Serving REST endpoint, answered on demand."""
        return tfserving_rest_routes(self.predict, self.status, self.metadata)
