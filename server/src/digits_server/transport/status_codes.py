"""Domain errors -> gRPC status codes (and, derived from them, HTTP statuses): the only place
where that mapping lives.

`unary_rpc` wraps a servicer method: it turns ServingError subclasses into
`context.abort(code, message)` with the error's kind in the trailing metadata (`digits-error:
RequestNotFound`, so clients can tell the NOT_FOUNDs apart), any other exception into a plain INTERNAL (logged with its
traceback server-side, never sent), and records the call's metrics with its final code.
`stream_rpc` does the same for a streaming method (`stream_groups` records the metrics of
each message of a stream). The REST port (protocols/rest_server.py) answers an error with
`http_status_of`: the gRPC code's HTTP status, as google.rpc.Code documents the pairs.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from digits_server.core import errors
from digits_server.core.domain import CallRecord
from digits_server.observability.metrics import ServerMetrics

log = logging.getLogger(__name__)

CODES: dict[type[errors.ServingError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.RequestNotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.ModelUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExpired: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.InvalidConfig: grpc.StatusCode.FAILED_PRECONDITION,
    errors.NotSupported: grpc.StatusCode.UNIMPLEMENTED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
# Each gRPC code's HTTP status (google/rpc/code.proto's "HTTP Mapping"), for the REST port.
HTTP_STATUSES: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
OK = grpc.StatusCode.OK  # its name is spelled out on the request path (an enum's .name is a Python call)
INTERNAL_MESSAGE = "internal error while serving the request; the server log has the details"
# Status details travel in a header; gRPC drops the whole response when headers pass ~16 KiB
# (non-ASCII characters are percent-encoded, 3 bytes each), so messages that echo client input
# are clipped.
MAX_DETAILS_CHARS = 1000


def details_of(exc: BaseException) -> str:
    """The status message for an exception, clipped to MAX_DETAILS_CHARS."""
    text = str(exc)
    return text if len(text) <= MAX_DETAILS_CHARS else text[: MAX_DETAILS_CHARS - 1] + "…"


#: Trailing metadata key naming the kind of a ServingError: the CODES class it maps by.
KIND_KEY = "digits-error"


def kind_of(exc: BaseException) -> tuple[tuple[str, str], ...]:
    """Trailing metadata naming the error's kind, e.g. (("digits-error", "ModelNotFound"),)."""
    for kind in type(exc).__mro__:
        if kind in CODES:
            return ((KIND_KEY, kind.__name__),)
    return ()


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status code for an exception."""
    for kind in type(exc).__mro__:
        if kind in CODES:
            return CODES[kind]
    return grpc.StatusCode.INTERNAL


def http_status_of(exc: BaseException) -> tuple[int, grpc.StatusCode]:
    """The HTTP status for an exception, and the gRPC code it derives from (500 INTERNAL by default)."""
    code = code_of(exc)
    return HTTP_STATUSES.get(code, 500), code


Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def unary_rpc(method: str, protocol: str = "digits.v1") -> Callable[[Handler], Handler]:
    """Decorate `async def Method(self, request, context, call: CallRecord)` servicer methods
    of `protocol` (the metrics' protocol label)."""

    def decorate(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = CallRecord(method, protocol)
            started = time.perf_counter()
            code = OK
            metrics: ServerMetrics = self.metrics
            in_flight = (protocol, method)
            metrics.in_flight.inc(in_flight)
            try:
                return await fn(self, request, context, call)
            except errors.ServingError as exc:
                code = code_of(exc)
                await context.abort(code, details_of(exc), trailing_metadata=kind_of(exc))
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", method)
                await context.abort(code, INTERNAL_MESSAGE)
            finally:
                metrics.in_flight.inc(in_flight, -1)
                metrics.observe_request(call, "OK" if code is OK else code.name, time.perf_counter() - started)

        return wrapper  # type: ignore[return-value]

    return decorate


StreamHandler = TypeVar("StreamHandler", bound=Callable[..., AsyncIterator[Any]])


def stream_rpc(method: str) -> Callable[[StreamHandler], StreamHandler]:
    """Decorate `async def Method(self, request_iterator, context)` generators: a ServingError ends the
    stream with its code and message, anything else with a plain INTERNAL (traceback only in the log)."""

    def decorate(fn: StreamHandler) -> StreamHandler:
        @functools.wraps(fn)
        async def wrapper(self: Any, request_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            metrics: ServerMetrics = self.metrics
            try:
                with metrics.track_in_flight(CallRecord(method)):  # the stream as a whole
                    async for response in fn(self, request_iterator, context):
                        yield response
            except errors.ServingError as exc:
                await context.abort(code_of(exc), details_of(exc), trailing_metadata=kind_of(exc))
            except grpc.aio.AbortError:
                raise
            except Exception:
                log.exception("%s failed", method)
                await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)

        return wrapper  # type: ignore[return-value]

    return decorate
