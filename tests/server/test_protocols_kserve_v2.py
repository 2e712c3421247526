"""The Open Inference Protocol v2 on the digits port, driven by tritonclient (Triton's own client,
in its own venv) against a real server with trainer-made models; answers must equal digits.v1's."""

from __future__ import annotations

import re

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from digits_server.apis import inference_v2_pb2 as v2
from digits_server.apis import inference_v2_pb2_grpc as v2_grpc
from digits_server.protocols import kserve_v2_requests as requests
from tests.ecosystem import ours
from tests.ecosystem.ours import (  # noqa: F401 (fixtures)
    CELLS,
    COUNT,
    LABELS,
    VERSIONS,
    digits,
    expected,
    pngs,
    protocol_repo,
    same_predictions,
    server,
    value,
)
from tests.ecosystem.venv import readme_snippet, run_code, run_script


@pytest.fixture(scope="module")
def seen(server, digits: np.ndarray, pngs: list[bytes]) -> dict:
    """Everything tritonclient saw, from one run of tests/ecosystem/triton_client.py."""
    return run_script("triton_client.py", ours.payload(server.target, CELLS, digits, pngs))


def test_server_live_ready_and_metadata(seen: dict) -> None:
    assert value(seen["server_live"]) is True
    assert value(seen["server_ready"]) is True
    metadata = value(seen["server_metadata"])
    assert metadata["name"] == "digits-server" and metadata["extensions"] == ["model_repository"]
    assert value(seen["unknown_model_ready"]) is False


@pytest.mark.parametrize("cell", CELLS)
def test_model_ready_by_name_and_version(seen: dict, cell: str) -> None:
    checks = seen["cells"][cell]
    assert value(checks["ready"]) is True
    assert value(checks["ready_v1"]) is True
    assert value(checks["ready_v7"]) is False


@pytest.mark.parametrize("cell", CELLS)
def test_model_metadata_is_truthful(seen: dict, cell: str) -> None:
    assert value(seen["cells"][cell]["metadata"]) == {
        "name": cell,
        "versions": [str(v) for v in VERSIONS[cell]],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": ["-1", "28", "28"]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": ["-1", "10"]},
            {"name": "digit", "datatype": "INT32", "shape": ["-1"]},
        ],
    }


@pytest.mark.parametrize("cell", CELLS)
def test_raw_uint8_infer_equals_our_api(seen: dict, expected: dict, cell: str) -> None:
    for key, version in (("raw_uint8", VERSIONS[cell][0]), ("raw_uint8_v1", 1)):
        got = value(seen["cells"][cell][key])
        assert got["model_name"] == cell and got["model_version"] == str(version)
        assert got["raw"] is True, "a raw request gets a raw answer"
        assert got["outputs"] == ["probabilities", "digit"]
        same_predictions(got, expected[cell])
    assert value(seen["cells"][cell]["raw_uint8"])["id"] == "r-1"


@pytest.mark.parametrize("cell", CELLS)
def test_typed_uint8_infer_answers_typed(seen: dict, expected: dict, cell: str) -> None:
    got = value(seen["cells"][cell]["typed_uint8"])
    assert got["raw"] is False and got["id"] == "typed-1"
    assert got["shapes"] == {"probabilities": [COUNT, 10], "digit": [COUNT]}
    assert got["datatypes"] == {"probabilities": "FP32", "digit": "INT32"}
    same_predictions(got, expected[cell])


@pytest.mark.parametrize(("label", "version"), LABELS.items())
def test_model_version_may_be_a_label(seen: dict, expected: dict, label: str, version: int) -> None:
    got = value(seen["by_label"][f"gru@{label}"])
    assert got["model_version"] == str(version)
    same_predictions(got, expected["gru"])


def test_fp32_pixels_equal_uint8(seen: dict, expected: dict) -> None:
    same_predictions(value(seen["fp32"]), expected[CELLS[0]])


def test_encoded_png_bytes_are_served_like_our_api(server, seen: dict, pngs: list[bytes]) -> None:
    ours.served_like(seen["png_bytes"], ours.classify_batch(server.target, CELLS[0], ours.encoded(pngs)))


def test_requested_outputs_only(seen: dict, expected: dict) -> None:
    got = value(seen["only_digit"])
    assert got["outputs"] == ["digit"] and got["digits"] == expected[CELLS[0]]["digits"]


@pytest.mark.parametrize(
    ("case", "code", "names"),
    [
        ("unknown_model", "NOT_FOUND", "no-such-model"),
        ("unknown_version", "NOT_FOUND", "version 7"),
        ("unknown_label", "NOT_FOUND", "no label 'beta'"),
        ("bad_shape", "INVALID_ARGUMENT", "inputs[0].shape"),
        ("wrong_dtype", "INVALID_ARGUMENT", "inputs[0].datatype"),
        ("wrong_input_name", "INVALID_ARGUMENT", "inputs[0].name"),
        ("unknown_output", "INVALID_ARGUMENT", "outputs[0].name"),
        ("uint8_out_of_range", "INVALID_ARGUMENT", "uint_contents"),
        ("unknown_model_metadata", "NOT_FOUND", "no-such-model"),
    ],
)
def test_errors_carry_the_right_code(seen: dict, case: str, code: str, names: str) -> None:
    ours.failed_with(seen["errors"][case], code, names)


def test_repository_load_rescans_and_unload_is_unimplemented(seen: dict) -> None:
    assert seen["load_model"]["ok"], seen["load_model"]
    assert seen["unload_model"]["code"] == "UNIMPLEMENTED"
    assert "RepositoryModelUnload" in seen["unload_model"]["message"]


def test_requests_are_counted_with_the_protocol_label(server, seen: dict) -> None:
    import urllib.request

    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    counts = {
        (s.labels["protocol"], s.labels["method"], s.labels["model"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "digits_requests"
        for s in family.samples
        if s.name == "digits_requests_total"
    }
    assert counts[("kserve.v2", "ModelInfer", "lstm", "OK")] >= 2
    assert counts[("kserve.v2", "ModelInfer", "", "INVALID_ARGUMENT")] >= 1
    assert counts[("kserve.v2", "ServerLive", "", "OK")] >= 1


@pytest.mark.parametrize("raw", [True, False])
def test_request_builder_for_benchmarks(server, expected: dict, digits: np.ndarray, raw: bool) -> None:
    with grpc.insecure_channel(server.target) as channel:
        response = v2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            requests.infer_request("gru", digits, raw=raw), timeout=60
        )
    assert isinstance(response, v2.ModelInferResponse) and bool(response.raw_output_contents) is raw
    predicted, probabilities = requests.read_infer_response(response)
    same_predictions({"digits": predicted.tolist(), "probabilities": probabilities}, expected["gru"])


def test_readme_tritonclient_snippet_works(server) -> None:
    printed = run_code(readme_snippet("tritonclient", server.target))
    digit, probabilities = printed.split("]", 1)
    assert re.fullmatch(r"\[\d", digit.strip()), printed
    assert probabilities.count(" ") >= 9 and "[[" in probabilities, printed
