"""Exceptions raised by the digits client, one class per gRPC status code that matters.

Every exception carries ``.code`` (a :class:`grpc.StatusCode`) and ``.details`` (the
server's message).  :func:`from_rpc_error` is the one place where gRPC errors are turned
into these classes; :data:`ERRORS_BY_CODE` is its mapping table, refined by
:data:`ERRORS_BY_KIND` for the kind the server names in the ``digits-error`` trailing metadata
(NOT_FOUND is a model, a feedback request id or something else).
"""

from __future__ import annotations

import grpc

__all__ = [
    "DigitsError",
    "NotFoundError",
    "ModelNotFoundError",
    "RequestNotFoundError",
    "InvalidInputError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "AuthenticationError",
    "PermissionDeniedError",
    "AlreadyExistsError",
    "ERRORS_BY_CODE",
    "ERRORS_BY_KIND",
    "KIND_KEY",
    "from_rpc_error",
]


class DigitsError(Exception):
    """Base class of every client error; also used for status codes without a subclass."""

    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, details: str, code: grpc.StatusCode | None = None) -> None:
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.details: str = details
        super().__init__(details)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code.name}, details={self.details!r})"


class NotFoundError(DigitsError):
    """NOT_FOUND: something the call names does not exist (catch this for any of them)."""

    default_code = grpc.StatusCode.NOT_FOUND


class ModelNotFoundError(NotFoundError):
    """NOT_FOUND: no model, version, label or experiment matches the selector.

    Also what a NOT_FOUND without a kind becomes (servers that do not name one).
    """


class RequestNotFoundError(NotFoundError):
    """NOT_FOUND: Feedback for a request id the server remembers no prediction of (unknown,
    expired or pushed out by newer predictions)."""


class InvalidInputError(DigitsError, ValueError):
    """INVALID_ARGUMENT: a malformed image or request, found by the server or by the client."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceExhaustedError(DigitsError):
    """RESOURCE_EXHAUSTED: the server's queue is full or a message is too large."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(DigitsError):
    """UNAVAILABLE: the server cannot be reached or is shutting down."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(DigitsError):
    """DEADLINE_EXCEEDED: the call did not finish within its timeout."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class AuthenticationError(DigitsError):
    """UNAUTHENTICATED: no token, or a token the server does not know."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(DigitsError):
    """PERMISSION_DENIED: the token lacks the scope the call needs (e.g. admin)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class AlreadyExistsError(DigitsError):
    """ALREADY_EXISTS: e.g. a second feedback for the same request, or a duplicate experiment."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


#: The one mapping from status code to exception class; other codes give DigitsError.
ERRORS_BY_CODE: dict[grpc.StatusCode, type[DigitsError]] = {
    grpc.StatusCode.NOT_FOUND: ModelNotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInputError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: AuthenticationError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
}


#: Trailing metadata key in which the server names the kind of its error.
KIND_KEY = "digits-error"
#: (code, kind) pairs with their own class; other kinds of a code get ERRORS_BY_CODE's.
ERRORS_BY_KIND: dict[tuple[grpc.StatusCode, str], type[DigitsError]] = {
    (grpc.StatusCode.NOT_FOUND, "ModelNotFound"): ModelNotFoundError,
    (grpc.StatusCode.NOT_FOUND, "RequestNotFound"): RequestNotFoundError,
    (grpc.StatusCode.NOT_FOUND, "NotFound"): NotFoundError,
}


def _kind(error: grpc.RpcError) -> str | None:
    metadata_fn = getattr(error, "trailing_metadata", None)
    try:
        metadata = metadata_fn() if callable(metadata_fn) else None
    except Exception:  # noqa: BLE001 - no metadata is no kind
        return None
    for key, value in metadata or ():
        if key == KIND_KEY:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None


def from_rpc_error(error: grpc.RpcError) -> DigitsError:
    """Turn a sync or asyncio gRPC error into the matching :class:`DigitsError` subclass."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details = details_fn() if callable(details_fn) else None
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    kind = _kind(error)
    cls = ERRORS_BY_KIND.get((code, kind)) if kind else None
    return (cls or ERRORS_BY_CODE.get(code, DigitsError))(details or "", code)
