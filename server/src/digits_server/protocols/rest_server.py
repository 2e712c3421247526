"""The REST port: one aiohttp server in the gRPC server's event loop, answering the Open
Inference Protocol v2 REST API (kserve_v2_rest) and TensorFlow Serving's REST API
(tfserving_rest) through the same servicers and data plane as the gRPC port.

Every route names the gRPC method it is the REST form of (`RestRoute.grpc_method`), so one
`rest_call` wrapper applies the gRPC port's rules to it:
- auth: the authorizer decides by that method name (same scopes: inference vs admin; health
  open), from the `Authorization: Bearer <token>` header and the peer address;
- deadline: a `Request-Timeout-Ms` header (or a protocol's own timeout) sets the deadline the
  data plane honours, and the handler is cancelled when it passes (504);
- limits: bodies larger than --max-message-bytes get 413; batch and image limits are the codecs';
- errors: status_codes.http_status_of gives the HTTP status (the gRPC code's, one mapping); the
  body is `{"error": "<message naming the field>"}`, the error's kind is in a `digits-error` header;
- metrics: `digits_requests_total{protocol="kserve.v2.rest"|"tfserving.rest"}` with the gRPC code
  name, so dashboards and alerts read both ports alike.
`RestGate` drains the port on shutdown: requests already accepted finish, new ones get 503.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from digits_server.core.domain import CallRecord
from digits_server.core.errors import ConfigurationError, DeadlineExpired, InvalidInput, ServingError, ShuttingDown
from digits_server.observability.metrics import ServerMetrics
from digits_server.security.auth import Authorizer
from digits_server.transport.status_codes import INTERNAL_MESSAGE, details_of, http_status_of, kind_of

log = logging.getLogger(__name__)

TIMEOUT_HEADER = "Request-Timeout-Ms"
UNKNOWN_ROUTE = "/digits.rest/Unknown"  # needs the admin scope, like an unknown gRPC method


@dataclass
class RestContext:
    """One REST call: its metrics record and deadline (time.monotonic()). `time_remaining` lets
    the servicers' bodies read the deadline as they read a gRPC context's."""

    call: CallRecord
    deadline: float | None = None

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or None without one."""
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def tighten(self, seconds: float) -> None:
        """Bring the deadline forward to `seconds` from now (a later one is kept as it is)."""
        deadline = time.monotonic() + seconds
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)


RestHandler = Callable[[web.Request, RestContext], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class RestRoute:
    """An HTTP method and path, the gRPC method it stands for, and its handler."""

    http_method: str
    path: str
    grpc_method: str  # full name, "/inference.GRPCInferenceService/ModelInfer": decides the scope
    protocol: str  # metrics' protocol label
    handler: RestHandler
    gated: bool = True  # False: still answered while draining (health probes)

    @property
    def method(self) -> str:
        """The metrics' method label: the gRPC method's short name."""
        return self.grpc_method.rsplit("/", 1)[-1]


def error_response(exc: BaseException, status: int | None = None) -> web.Response:
    """`{"error": message}` with the exception's HTTP status (the v2 and TF Serving REST error shape)."""
    mapped, _ = http_status_of(exc)
    message = details_of(exc) if isinstance(exc, ServingError) else INTERNAL_MESSAGE
    headers = dict(kind_of(exc))
    return web.json_response({"error": message}, status=status or mapped, headers=headers)


def peer_of(request: web.Request) -> str:
    """The client address in gRPC's peer form (`ipv4:127.0.0.1:0`), which the authorizer reads."""
    host = request.remote or ""
    return f"ipv6:[{host}]:0" if ":" in host else f"ipv4:{host}:0"


class RestGate:
    """Counts the requests being served and, once closed, refuses new ones (503).

    Draining mirrors transport/drain.py: a moment for requests already sent to be read, then the
    gate closes; the admitted requests finish (within the grace period); refusals go on until
    callers pause (QUIET_SECONDS without one, at most LINGER_SECONDS), then the port closes.
    """

    SETTLE_SECONDS = 0.05
    QUIET_SECONDS = 0.05
    LINGER_SECONDS = 1.0

    def __init__(self) -> None:
        self.closed = False
        self.in_flight = 0
        self.refusals = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        """Admit a request, or raise ShuttingDown once closed."""
        if self.closed:
            self.refusals += 1
            raise ShuttingDown("server: shutting down, the request was not started; retry on another replica")
        self.in_flight += 1
        self._idle.clear()

    def leave(self) -> None:
        """A request admitted by `enter` is done."""
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    async def drain(self, grace: float) -> None:
        """Close, wait (at most `grace` seconds) for the admitted requests, linger while refusing."""
        deadline = time.monotonic() + grace
        await asyncio.sleep(min(self.SETTLE_SECONDS, grace))  # requests already sent get read and admitted
        self.closed = True
        log.info("rest: new requests refused; %d in flight", self.in_flight)
        try:
            await asyncio.wait_for(self._idle.wait(), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            log.warning("rest: %d requests still running after the grace period", self.in_flight)
        lingering = min(deadline, time.monotonic() + self.LINGER_SECONDS)
        while time.monotonic() < lingering:
            refused = self.refusals
            await asyncio.sleep(self.QUIET_SECONDS)
            if self.refusals == refused:
                break


def rest_call(
    route: RestRoute, authorizer: Authorizer, metrics: ServerMetrics, gate: RestGate, max_body_bytes: int
) -> Callable:
    """The aiohttp handler of `route`: gate, auth, deadline, error mapping and metrics around it."""

    async def serve(request: web.Request) -> web.StreamResponse:
        context = RestContext(CallRecord(route.method, route.protocol))
        started = time.perf_counter()
        code = "OK"
        key = (route.protocol, route.method)
        metrics.in_flight.inc(key)
        admitted = False
        try:
            if route.gated:
                gate.enter()
                admitted = True
            try:
                authorizer.check(route.grpc_method, request.headers.get("Authorization"), peer_of(request))
            except ServingError as exc:
                metrics.count_auth_rejection(route.grpc_method, http_status_of(exc)[1].name)
                raise
            timeout = request.headers.get(TIMEOUT_HEADER)
            if timeout is not None:
                context.tighten(timeout_seconds(timeout))
            remaining = context.time_remaining()
            if remaining is None:
                return await route.handler(request, context)
            try:
                async with asyncio.timeout(remaining):
                    return await route.handler(request, context)
            except TimeoutError:
                raise DeadlineExpired(f"{TIMEOUT_HEADER}: the deadline passed before the answer was ready") from None
        except ServingError as exc:
            code = http_status_of(exc)[1].name
            response = error_response(exc)
            if isinstance(exc, ShuttingDown):
                response.force_close()  # a keep-alive client reconnects (to another replica)
            return response
        except web.HTTPRequestEntityTooLarge as exc:
            code = "RESOURCE_EXHAUSTED"
            message = f"request body: larger than the limit of {max_body_bytes} bytes (--max-message-bytes)"
            return web.json_response({"error": message}, status=exc.status)
        except web.HTTPException as exc:  # aiohttp's own refusals of a malformed request
            code = "INVALID_ARGUMENT" if exc.status < 500 else "INTERNAL"
            return web.json_response({"error": f"request: {exc.reason}"}, status=exc.status)
        except ConnectionError:  # the client went away mid-request: nobody to answer, nothing to log
            code = "CANCELLED"
            return web.json_response({"error": "request: the client closed the connection"}, status=499)
        except Exception as exc:
            code = "INTERNAL"
            log.exception("%s %s failed", request.method, request.path)
            return error_response(exc)
        finally:
            if admitted:
                gate.leave()
            metrics.in_flight.inc(key, -1)
            metrics.observe_request(context.call, code, time.perf_counter() - started)

    return serve


def timeout_seconds(text: str) -> float:
    """A `Request-Timeout-Ms` value as seconds; anything but a positive number is InvalidInput."""
    try:
        milliseconds = float(text)
    except ValueError:
        milliseconds = -1.0
    if not milliseconds > 0 or milliseconds == float("inf"):
        raise InvalidInput(f"{TIMEOUT_HEADER}: expected a positive number of milliseconds, got {text!r}")
    return milliseconds / 1000.0


def unknown_route(authorizer: Authorizer) -> Callable:
    """The answer for a path no route has: 404 in the REST error shape, after the same auth check
    as an unknown gRPC method (a client without an admin token cannot map the API)."""

    async def refuse(request: web.Request) -> web.Response:
        try:
            authorizer.check(UNKNOWN_ROUTE, request.headers.get("Authorization"), peer_of(request))
        except ServingError as exc:
            return error_response(exc)
        return web.json_response({"error": f"no endpoint {request.method} {request.path}"}, status=404)

    return refuse


class RestServer:
    """The REST port's aiohttp application and site, started and drained by app.py."""

    def __init__(
        self,
        routes: Sequence[RestRoute],
        authorizer: Authorizer,
        metrics: ServerMetrics,
        max_body_bytes: int,
        ssl_context: ssl.SSLContext | None = None,
        gate: RestGate | None = None,
    ) -> None:
        self.gate = gate if gate is not None else RestGate()
        self.ssl_context = ssl_context
        self.app = web.Application(client_max_size=max_body_bytes, handler_args={"access_log": None})
        for route in routes:
            handler = rest_call(route, authorizer, metrics, self.gate, max_body_bytes)
            self.app.router.add_route(route.http_method, route.path, handler)
        self.app.router.add_route("*", "/{tail:.*}", unknown_route(authorizer))
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: a free port); returns the bound port."""
        # The gate drains first; what still runs after it (past the grace period) gets one more second.
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.ssl_context, reuse_port=False, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            reason = "is in use by another process" if exc.errno == errno.EADDRINUSE else f"failed: {exc.strerror or exc}"
            raise ConfigurationError(
                f"http_port: listening on {host}:{port} {reason} (choose another --http-port, 0 for a free one, "
                "or -1 to turn the REST port off)"
            ) from None
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self, grace: float) -> None:
        """Refuse new requests (503), let admitted ones finish within `grace`, then close the port."""
        await self.gate.drain(grace)
        if self._runner is not None:
            await self._runner.cleanup()
