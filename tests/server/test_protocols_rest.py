"""The REST port (--http-port): the Open Inference Protocol v2 REST API driven by tritonclient.http
(Triton's own client, in its own venv) and by curl, and TF Serving's REST API driven by curl,
against a real server with trainer-made models; answers must equal digits.v1's on the gRPC port
of the same server."""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

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
from tests.ecosystem.venv import SNIPPETS, run_code, run_script
from tests.tools import require_tool


@pytest.fixture(scope="module")
def seen(server, digits: np.ndarray, pngs: list[bytes]) -> dict:
    """Everything tritonclient.http saw, from one run of tests/ecosystem/triton_http_client.py."""
    target = server.http_url.removeprefix("http://")
    return run_script("triton_http_client.py", ours.payload(target, CELLS, digits, pngs))


def curl(url: str, *args: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    """One curl call: (HTTP status, response headers, body)."""
    command = [require_tool("curl", "apt-get install curl"), "-sS", "-D", "-", "--max-time", "60", *args, url]
    if body is not None:
        command += ["--data-binary", "@-"]
    done = subprocess.run(command, input=body, capture_output=True, timeout=90, check=True)
    head, _, content = done.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, content


def curl_json(url: str, *args: str, body: object = None) -> tuple[int, dict]:
    """curl with a JSON body (when given) and a JSON answer: (HTTP status, answer)."""
    data = json.dumps(body).encode() if body is not None else None
    extra = ("-H", "Content-Type: application/json") if data is not None else ()
    status, _, content = curl(url, *extra, *args, body=data)
    return status, json.loads(content)


def predictions(outputs: dict) -> dict:
    """v2 JSON outputs as {"digits", "probabilities"}."""
    found = {o["name"]: o["data"] for o in outputs["outputs"]}
    return {"digits": found["digit"], "probabilities": np.reshape(found["probabilities"], (-1, 10)).tolist()}


# --- tritonclient.http ------------------------------------------------------------------------


def test_server_live_ready_and_metadata(seen: dict) -> None:
    assert value(seen["server_live"]) is True
    assert value(seen["server_ready"]) is True
    metadata = value(seen["server_metadata"])
    assert metadata["name"] == "digits-server" and metadata["extensions"] == ["model_repository"]
    assert value(seen["unknown_model_ready"]) is False


@pytest.mark.parametrize("cell", CELLS)
def test_model_ready_and_metadata(seen: dict, cell: str) -> None:
    checks = seen["cells"][cell]
    assert value(checks["ready"]) is True and value(checks["ready_v1"]) is True
    assert value(checks["ready_v7"]) is False
    want = {
        "name": cell,
        "versions": [str(v) for v in VERSIONS[cell]],
        "platform": "tensorflow_savedmodel",
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, 28, 28]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT32", "shape": [-1]},
        ],
    }
    assert value(checks["metadata"]) == want and value(checks["metadata_v1"]) == want


@pytest.mark.parametrize("cell", CELLS)
def test_binary_and_json_infer_equal_our_api(seen: dict, expected: dict, cell: str) -> None:
    for key, version in (("binary_uint8", VERSIONS[cell][0]), ("binary_uint8_v1", 1)):
        got = value(seen["cells"][cell][key])
        assert got["model_name"] == cell and got["model_version"] == str(version)
        assert got["outputs"] == ["probabilities", "digit"] and got["binary"] == [True, True]
        same_predictions(got, expected[cell])
    assert value(seen["cells"][cell]["binary_uint8"])["id"] == "r-1"
    as_json = value(seen["cells"][cell]["json_uint8"])
    assert as_json["binary"] == [False, False] and as_json["id"] == "j-1"
    same_predictions(as_json, expected[cell])


@pytest.mark.parametrize(("label", "version"), LABELS.items())
def test_model_version_may_be_a_label(seen: dict, expected: dict, label: str, version: int) -> None:
    got = value(seen["by_label"][f"gru@{label}"])
    assert got["model_version"] == str(version)
    same_predictions(got, expected["gru"])


def test_fp32_png_outputs_and_timeout(server, seen: dict, expected: dict, pngs: list[bytes]) -> None:
    for key in ("fp32", "fp32_json", "with_timeout"):
        same_predictions(value(seen[key]), expected[CELLS[0]])
    ours.served_like(seen["png_bytes"], ours.classify_batch(server.target, CELLS[0], ours.encoded(pngs)))
    only = value(seen["only_digit"])
    assert only["outputs"] == ["digit"] and only["digits"] == expected[CELLS[0]]["digits"]


@pytest.mark.parametrize(
    ("case", "status", "names"),
    [
        ("unknown_model", "404", "no-such-model"),
        ("unknown_version", "404", "version 7"),
        ("unknown_label", "404", "no label 'beta'"),
        ("bad_shape", "400", "inputs[0].shape"),
        ("wrong_dtype", "400", "inputs[0].datatype"),
        ("wrong_input_name", "400", "inputs[0].name"),
        ("unknown_output", "400", "outputs[0].name"),
        ("tiny_timeout", "504", "deadline"),
        ("unknown_model_metadata", "404", "no-such-model"),
    ],
)
def test_errors_carry_the_grpc_adapters_mapping(seen: dict, case: str, status: str, names: str) -> None:
    record = seen["errors"][case]
    assert not record["ok"] and record["status"] == status and names in record["message"], record


def test_repository_load_rescans_and_unload_is_not_implemented(seen: dict) -> None:
    assert seen["load_model"]["ok"], seen["load_model"]
    assert seen["unload_model"]["status"] == "501" and "RepositoryModelUnload" in seen["unload_model"]["message"]


# --- curl: v2 ---------------------------------------------------------------------------------


def test_curl_v2_health_metadata_and_ready(server) -> None:
    base = server.http_url
    assert curl_json(f"{base}/v2/health/live") == (200, {"live": True})
    assert curl_json(f"{base}/v2/health/ready") == (200, {"ready": True})
    assert curl_json(f"{base}/v2")[1]["name"] == "digits-server"
    assert curl_json(f"{base}/v2/models/gru/versions/stable")[1]["versions"] == ["2", "1"]
    assert curl_json(f"{base}/v2/models/gru/versions/2/ready") == (200, {"name": "gru", "ready": True})
    assert curl_json(f"{base}/v2/models/gru/versions/9/ready") == (400, {"name": "gru", "ready": False})


@pytest.mark.parametrize("cell", CELLS)
def test_curl_v2_json_infer_equals_our_api(server, expected: dict, digits: np.ndarray, cell: str) -> None:
    body = {"id": "c-1", "inputs": [{"name": "images", "datatype": "UINT8", "shape": [COUNT, 28, 28],
                                     "data": digits.tolist()}]}
    status, answer = curl_json(f"{server.http_url}/v2/models/{cell}/infer", body=body)
    assert status == 200 and answer["model_name"] == cell and answer["id"] == "c-1", answer
    same_predictions(predictions(answer), expected[cell])


def test_curl_v2_png_files_as_base64_bytes(server, pngs: list[bytes]) -> None:
    files = [base64.b64encode(p).decode() for p in pngs]
    body = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [COUNT], "data": files,
                        "parameters": {"content_type": "base64"}}]}
    status, answer = curl_json(f"{server.http_url}/v2/models/{CELLS[0]}/infer", body=body)
    assert status == 200, answer
    ours.served_like({"ok": True, "value": predictions(answer)},
                     ours.classify_batch(server.target, CELLS[0], ours.encoded(pngs)))


@pytest.mark.parametrize(
    ("body", "status", "names"),
    [
        (b"{not json", 400, "request body: not valid JSON"),
        (b'{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": [300]}]}', 400,
         "inputs[0].data"),
        (b'{"inputs": [{"name": "images", "datatype": "UINT8", "shape": "x", "data": []}]}', 400, "inputs[0].shape"),
        (b'{"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28]}]}', 400, "inputs[0]: needs data"),
    ],
)
def test_curl_v2_bad_bodies_name_the_field(server, body: bytes, status: int, names: str) -> None:
    got, headers, content = curl(f"{server.http_url}/v2/models/lstm/infer", body=body)
    assert got == status and names in json.loads(content)["error"], content
    assert headers["digits-error"] == "InvalidInput"


def test_curl_v2_binary_extension_lengths_are_checked(server, digits: np.ndarray) -> None:
    header = json.dumps({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28],
                                     "parameters": {"binary_data_size": 784}}]}).encode()
    url = f"{server.http_url}/v2/models/lstm/infer"
    length = f"Inference-Header-Content-Length: {len(header)}"
    status, headers, content = curl(url, "-H", length, body=header + digits[0].tobytes())
    assert status == 200 and "inference-header-content-length" not in headers, content
    status, _, content = curl(url, "-H", length, body=header + digits[0].tobytes()[:700])
    assert status == 400 and b"binary_data_size" in content
    status, _, content = curl(url, "-H", "Inference-Header-Content-Length: 99999", body=header)
    assert status == 400 and b"Inference-Header-Content-Length" in content


def test_curl_v2_deadline_header(server, digits: np.ndarray) -> None:
    body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": digits[0].tolist()}]}
    url = f"{server.http_url}/v2/models/lstm/infer"
    assert curl_json(url, "-H", "Request-Timeout-Ms: 60000", body=body)[0] == 200
    status, answer = curl_json(url, "-H", "Request-Timeout-Ms: 0.001", body=body)
    assert status == 504 and "deadline" in answer["error"], answer
    status, answer = curl_json(url, "-H", "Request-Timeout-Ms: soon", body=body)
    assert status == 400 and "Request-Timeout-Ms" in answer["error"], answer


def test_curl_unknown_endpoint_is_404_in_the_error_shape(server) -> None:
    status, answer = curl_json(f"{server.http_url}/v3/anything")
    assert status == 404 and "no endpoint GET /v3/anything" in answer["error"]


# --- curl: TF Serving -------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_curl_tfserving_row_and_columnar_predict(server, expected: dict, digits: np.ndarray, cell: str) -> None:
    url = f"{server.http_url}/v1/models/{cell}:predict"
    status, rows = curl_json(url, body={"instances": digits.tolist()})
    assert status == 200, rows
    by_rows = {"digits": [r["digit"] for r in rows["predictions"]],
               "probabilities": [r["probabilities"] for r in rows["predictions"]]}
    same_predictions(by_rows, expected[cell])
    status, columns = curl_json(url, body={"inputs": {"images": digits.tolist()}})
    assert status == 200, columns
    same_predictions({"digits": columns["outputs"]["digit"], "probabilities": columns["outputs"]["probabilities"]},
                     expected[cell])


def test_curl_tfserving_versions_labels_files_and_floats(server, expected: dict, digits: np.ndarray,
                                                         pngs: list[bytes]) -> None:
    base = f"{server.http_url}/v1/models/gru"
    for path in ("/versions/1", "/labels/stable", "/labels/canary"):
        status, answer = curl_json(f"{base}{path}:predict", body={"instances": [{"images": d} for d in digits.tolist()]})
        assert status == 200, answer
        assert [r["digit"] for r in answer["predictions"]] == expected["gru"]["digits"]
    status, floats = curl_json(f"{base}:predict", body={"inputs": (digits / 255.0).tolist()})
    assert status == 200 and floats["outputs"]["digit"] == expected["gru"]["digits"], floats
    files = [{"b64": base64.b64encode(p).decode()} for p in pngs]
    status, answer = curl_json(f"{base}:predict", body={"instances": files})
    want = ours.classify_batch(server.target, "gru", ours.encoded(pngs))
    assert status == 200 and [r["digit"] for r in answer["predictions"]] == want["digits"], answer


def test_curl_tfserving_status_and_metadata(server) -> None:
    status, answer = curl_json(f"{server.http_url}/v1/models/gru")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in (2, 1)
    ]}
    assert curl_json(f"{server.http_url}/v1/models/gru/labels/stable")[1]["model_version_status"][0]["version"] == "1"
    status, metadata = curl_json(f"{server.http_url}/v1/models/lstm/metadata")
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert status == 200 and signature["method_name"] == "tensorflow/serving/predict"
    assert set(signature["outputs"]) == {"probabilities", "digit"}


@pytest.mark.parametrize(
    ("path", "body", "status", "names"),
    [
        ("/v1/models/nope:predict", {"instances": [[[0] * 28] * 28]}, 404, "nope"),
        ("/v1/models/lstm/versions/x:predict", {"instances": [[[0] * 28] * 28]}, 400, "version"),
        ("/v1/models/lstm:predict", {"instances": [[0]]}, 400, "shape"),
        ("/v1/models/lstm:predict", {"instances": [], "inputs": []}, 400, "exactly one"),
        ("/v1/models/lstm:predict", {"instances": [[["a"] * 28] * 28]}, 400, "instances"),
        ("/v1/models/lstm:predict", {"signature_name": "other", "instances": [[[0] * 28] * 28]}, 400, "signature_name"),
        ("/v1/models/lstm/versions/9", None, 404, "version 9"),
    ],
)
def test_curl_tfserving_errors(server, path: str, body: object, status: int, names: str) -> None:
    got, answer = curl_json(f"{server.http_url}{path}", body=body)
    assert got == status and names in answer["error"], answer


# --- metrics ----------------------------------------------------------------------------------


def test_rest_requests_are_counted_with_their_protocol_label(server, seen: dict, digits: np.ndarray) -> None:
    body = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 28, 28], "data": digits[0].tolist()}]}
    assert curl_json(f"{server.http_url}/v2/models/lstm/infer", body=body)[0] == 200
    assert curl_json(f"{server.http_url}/v1/models/gru")[0] == 200
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    counts = {
        (s.labels["protocol"], s.labels["method"], s.labels["model"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "digits_requests"
        for s in family.samples
        if s.name == "digits_requests_total"
    }
    assert counts[("kserve.v2.rest", "ModelInfer", "lstm", "OK")] >= 2
    assert counts[("kserve.v2.rest", "ModelInfer", "", "INVALID_ARGUMENT")] >= 1
    assert counts[("kserve.v2.rest", "ServerLive", "", "OK")] >= 1
    assert counts[("tfserving.rest", "GetModelStatus", "gru", "OK")] >= 1


# --- the examples of docs/protocols.md --------------------------------------------------------


def doc_block(name: str, language: str, target: str) -> str:
    """The code block after `<!-- snippet: NAME -->` in docs/protocols.md, pointed at `target`."""
    marker = f"<!-- snippet: {name} -->\n```{language}\n"
    text = SNIPPETS.read_text()
    assert marker in text, f"docs/protocols.md has no snippet {name!r}"
    code = text.split(marker, 1)[1].split("```", 1)[0]
    assert "localhost:8080" in code
    return code.replace("localhost:8080", target)


def test_the_docs_curl_examples_classify(server) -> None:
    require_tool("curl", "apt-get install curl")
    target = server.http_url.removeprefix("http://")
    script = "set -euo pipefail\n" + doc_block("curl", "sh", target).replace("curl -s ", "curl -sSf ")
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count('"digit"') >= 3 and '"predictions"' in done.stdout and '"AVAILABLE"' in done.stdout
    assert '"error"' not in done.stdout


def test_the_docs_tritonclient_http_snippet_classifies(server) -> None:
    output = run_code(doc_block("tritonclient-http", "python", server.http_url.removeprefix("http://")))
    assert output.startswith("[") and output.count("[") >= 3, output
