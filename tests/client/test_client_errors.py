"""gRPC status codes -> exception classes, over a real server that aborts, sync and asyncio."""

from __future__ import annotations

import grpc
import pytest

from digits import AsyncDigitsClient, DigitsClient, errors
from digits.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DeadlineExceededError,
    DigitsError,
    InvalidInputError,
    ModelNotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnavailableError,
)

MAPPED = [
    (grpc.StatusCode.NOT_FOUND, ModelNotFoundError),
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidInputError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
    (grpc.StatusCode.UNAUTHENTICATED, AuthenticationError),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
    (grpc.StatusCode.ALREADY_EXISTS, AlreadyExistsError),
]
UNMAPPED = [grpc.StatusCode.INTERNAL, grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNIMPLEMENTED]


@pytest.mark.parametrize("code, cls", MAPPED, ids=[c.name for c, _ in MAPPED])
def test_sync_mapping(fake_server, servicer, code, cls):
    servicer.abort = (code, f"details for {code.name}")
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(cls) as info:
            client.classify(bytes(784), model="lstm")
    error = info.value
    assert type(error) is cls
    assert error.code == code and error.details == f"details for {code.name}"
    assert str(error) == f"{code.name}: details for {code.name}"
    assert isinstance(error.__cause__, grpc.RpcError)


@pytest.mark.parametrize("code", UNMAPPED, ids=[c.name for c in UNMAPPED])
def test_sync_unmapped_codes_are_base_class(fake_server, servicer, code):
    servicer.abort = (code, "nope")
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(DigitsError) as info:
            client.list_models()
    assert type(info.value) is DigitsError and info.value.code == code and info.value.details == "nope"


@pytest.mark.asyncio
@pytest.mark.parametrize("code, cls", MAPPED, ids=[c.name for c, _ in MAPPED])
async def test_async_mapping(fake_server, servicer, code, cls):
    servicer.abort = (code, "async details")
    async with AsyncDigitsClient(fake_server.target) as client:
        with pytest.raises(cls) as info:
            await client.classify_batch([bytes(784)])
    assert type(info.value) is cls
    assert info.value.code == code and info.value.details == "async details"


@pytest.mark.asyncio
async def test_async_unmapped_code(fake_server, servicer):
    servicer.abort = (grpc.StatusCode.INTERNAL, "bug")
    async with AsyncDigitsClient(fake_server.target) as client:
        with pytest.raises(DigitsError) as info:
            await client.feedback("r", 1)
    assert type(info.value) is DigitsError and info.value.code == grpc.StatusCode.INTERNAL


def test_every_error_method_maps(fake_server, servicer):
    servicer.abort = (grpc.StatusCode.PERMISSION_DENIED, "admin scope needed")
    with DigitsClient(fake_server.target) as client:
        for call in (client.reload_models, client.list_experiments, lambda: client.delete_experiment("x"),
                     lambda: client.create_experiment("x", [("lstm", 1)]), lambda: client.model_status("x"),
                     lambda: client.experiment_report("x"), lambda: list(client.classify_stream([bytes(784)]))):
            with pytest.raises(PermissionDeniedError, match="admin scope needed"):
                call()


def test_domain_errors_from_fake_server(fake_server):
    with DigitsClient(fake_server.target) as client:
        with pytest.raises(ModelNotFoundError, match="known: gru, lstm"):
            client.model_status("cnn")
        client.create_experiment("e", [("lstm", 1)])
        with pytest.raises(AlreadyExistsError):
            client.create_experiment("e", [("lstm", 1)])


def test_mapping_table_is_the_single_source():
    for code, cls in MAPPED:
        assert errors.ERRORS_BY_CODE[code] is cls
        assert cls.default_code == code
        assert issubclass(cls, DigitsError)
    assert len(errors.ERRORS_BY_CODE) == len(MAPPED)
    # NOT_FOUND: one base class; the server's kind (trailing metadata) picks the subclass
    assert issubclass(ModelNotFoundError, errors.NotFoundError)
    assert issubclass(errors.RequestNotFoundError, errors.NotFoundError)
    assert not issubclass(errors.RequestNotFoundError, ModelNotFoundError)
    assert set(errors.ERRORS_BY_KIND.values()) <= {errors.NotFoundError, *errors.NotFoundError.__subclasses__()}
    assert issubclass(InvalidInputError, ValueError)


def test_client_side_error_defaults():
    error = InvalidInputError("bad shape")
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and error.details == "bad shape"
    assert repr(error) == "InvalidInputError(code=INVALID_ARGUMENT, details='bad shape')"
