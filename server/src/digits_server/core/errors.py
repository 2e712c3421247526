"""Domain errors raised by the serving core. Transport-free: `transport/status_codes.py` maps them to gRPC codes."""

from __future__ import annotations


class ServingError(Exception):
    """Base class of every error a caller should see, with a message naming the field at fault."""


class InvalidInput(ServingError):
    """The request is malformed: wrong length, bad encoding, out-of-range value, bad combination."""


class ModelNotFound(ServingError):
    """No model, version, label or experiment matches the selector."""


class NotFound(ServingError):
    """Something other than a model was not found (an unknown request id, an unknown experiment)."""


class RequestNotFound(NotFound):
    """No remembered prediction for a Feedback request id (unknown, expired or pushed out)."""


class AlreadyExists(ServingError):
    """The thing being created exists already (a second feedback for one request, an experiment name)."""


class Overloaded(ServingError):
    """A bounded queue is full: the request is rejected at once."""


class ModelUnavailable(ServingError):
    """The model exists but no version of it can serve right now (loading, failed, shutting down)."""


class ShuttingDown(ServingError):
    """The server is shutting down and did not start the call (safe to retry elsewhere)."""


class DeadlineExpired(ServingError):
    """The caller's deadline passed before the request was computed."""


class InvalidConfig(ServingError):
    """The model config file is unreadable or invalid; the message names the key at fault."""


class NotSupported(ServingError):
    """The call exists in a protocol the server speaks but does not apply to these models."""


class Unauthenticated(ServingError):
    """No credentials, or credentials that match no token."""


class PermissionDenied(ServingError):
    """Valid credentials without the scope the call needs."""


class ConfigurationError(Exception):
    """A setting or a file named by one cannot be used; the server reports it at start and exits.

    Not a ServingError: it never reaches a client, so it has no status code.
    """
