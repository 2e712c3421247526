"""Token scopes on the ecosystem protocols: probes open, inference calls need the inference scope,
the v2 repository calls (which reload models) need the admin scope — against a real server."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import inference_v2_pb2_grpc as v2_grpc
from digits_server.protocols import kserve_v2_requests
from tests.serverproc import start_server

INFERENCE, ADMIN = "inference-token-for-tests-0123", "admin-token-for-tests-456789"


@pytest.fixture(scope="module")
def stub(model_repo: Path):
    env = {"DIGITS_SERVER_INFERENCE_TOKENS": INFERENCE, "DIGITS_SERVER_ADMIN_TOKENS": ADMIN}
    proc = start_server(model_repo, "--poll-seconds", "0", env=env)
    with grpc.insecure_channel(proc.target) as channel:
        yield v2_grpc.GRPCInferenceServiceStub(channel)
    assert proc.stop() == 0, proc.log()


def code_of(method, request, token: str | None) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {token}")] if token else []
    try:
        method(request, metadata=metadata, timeout=60)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def test_probes_are_open(stub) -> None:
    assert code_of(stub.ServerLive, v2.ServerLiveRequest(), None) == grpc.StatusCode.OK
    assert code_of(stub.ServerReady, v2.ServerReadyRequest(), None) == grpc.StatusCode.OK


def test_inference_needs_a_token(stub) -> None:
    request = kserve_v2_requests.infer_request("lstm", np.zeros((1, 28, 28), np.uint8))
    assert code_of(stub.ModelInfer, request, None) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(stub.ModelInfer, request, INFERENCE) == grpc.StatusCode.OK
    assert code_of(stub.ModelMetadata, v2.ModelMetadataRequest(name="lstm"), INFERENCE) == grpc.StatusCode.OK


def test_repository_calls_need_the_admin_scope(stub) -> None:
    load = v2.RepositoryModelLoadRequest(model_name="lstm")
    assert code_of(stub.RepositoryModelLoad, load, INFERENCE) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(stub.RepositoryModelLoad, load, ADMIN) == grpc.StatusCode.OK
    unload = v2.RepositoryModelUnloadRequest(model_name="lstm")
    assert code_of(stub.RepositoryModelUnload, unload, INFERENCE) == grpc.StatusCode.PERMISSION_DENIED
