"""`digits bench` against real gRPC servers: the harness' echo server and a server that refuses."""

from __future__ import annotations

import json
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from bench.servers import start_baseline
from digits.cli import main


@pytest.fixture(scope="module")
def echo():
    server = start_baseline("echo", Path("."), [])
    yield server.target
    server.stop()


@pytest.fixture(scope="module")
def refusing():
    """A server whose every DigitClassifier call fails with RESOURCE_EXHAUSTED."""

    def refuse(request, context):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")

    handler = grpc.method_handlers_generic_handler(
        "digits.v1.DigitClassifier", {"Classify": grpc.unary_unary_rpc_method_handler(refuse)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(4), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def bench_json(capsys, *argv: str) -> dict:
    assert main(["bench", "--json", "--warmup", "0", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_closed_loop_unary_counts_every_request(echo, capsys, mnist_npz: Path) -> None:
    result = bench_json(capsys, "--target", echo, "-c", "4", "--count", "200", "--data", str(mnist_npz))
    assert result["requests"] >= 200 and result["ok"] == result["requests"]
    assert result["errors"] == {}
    assert result["images_per_second"] == result["requests_per_second"] > 0
    lat = result["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert result["scenario"]["method"] == "Classify" and result["scenario"]["concurrency"] == 4
    assert result["request_bytes"] > 784 and result["client_cpu_percent"] >= 0


def test_batch_mode_counts_images(echo, capsys) -> None:
    result = bench_json(capsys, "--target", echo, "--mode", "batch", "--batch-size", "8", "--count", "20")
    assert result["scenario"]["method"] == "ClassifyBatch"
    assert result["images_per_second"] == pytest.approx(8 * result["requests_per_second"], rel=1e-3)
    assert result["request_bytes"] > 8 * 784


def test_stream_mode_pipelines_over_one_stream(echo, capsys) -> None:
    result = bench_json(capsys, "--target", echo, "--mode", "stream", "--window", "8", "--count", "300")
    assert result["ok"] >= 300 and result["errors"] == {}
    assert result["scenario"]["method"] == "ClassifyStream" and result["scenario"]["window"] == 8


def test_open_loop_sends_at_most_the_scheduled_requests(echo, capsys) -> None:
    result = bench_json(capsys, "--target", echo, "--rate", "100", "--duration", "1")
    assert 0 < result["requests"] <= 101
    assert result["scenario"]["rate"] == 100


def test_errors_are_counted_by_code_and_fail_the_command(refusing, capsys) -> None:
    code = main(["bench", "--target", refusing, "--count", "30", "--warmup", "0", "--json"])
    assert code == 1
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] == 0 and result["errors"] == {"RESOURCE_EXHAUSTED": result["requests"]}


def test_table_output_and_usage_errors(echo, capsys) -> None:
    assert main(["bench", "--target", echo, "--count", "20", "--warmup", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "requests/s" in out and "latency ms" in out and "client CPU" in out
    assert main(["bench", "--target", echo, "--batch-size", "4"]) == 2
    assert "--batch-size needs --mode batch" in capsys.readouterr().err


@pytest.fixture(scope="module")
def our_server(model_repo: Path):
    from tests.serverproc import start_server

    server = start_server(model_repo, "--metrics-port", "-1", "--runtime", "tflite", "--http-port", "0")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ours(our_server) -> str:
    return our_server.target


def test_v2_protocol_drives_model_infer_on_our_server(ours, capsys) -> None:
    unary = bench_json(capsys, "--target", ours, "--protocol", "v2", "--model", "lstm", "--count", "40")
    assert unary["ok"] >= 40 and unary["errors"] == {}
    assert unary["scenario"]["method"] == "ModelInfer" and unary["scenario"]["protocol"] == "v2"
    batch = bench_json(capsys, "--target", ours, "--protocol", "v2", "--model", "gru", "--mode", "batch",
                       "--batch-size", "8", "--count", "10")
    assert batch["ok"] >= 10 and batch["images_per_second"] == pytest.approx(8 * batch["requests_per_second"], rel=1e-3)


@pytest.mark.parametrize("protocol", ["v2-rest", "v2-rest-json"])
def test_v2_rest_protocol_drives_the_rest_port(our_server, capsys, protocol: str) -> None:
    rest = our_server.http_url.removeprefix("http://")
    unary = bench_json(capsys, "--target", rest, "--protocol", protocol, "--model", "lstm", "--count", "40",
                       "--concurrency", "4")
    assert unary["ok"] >= 40 and unary["errors"] == {}, unary
    assert unary["scenario"]["method"] == "ModelInfer" and unary["scenario"]["protocol"] == protocol
    batch = bench_json(capsys, "--target", rest, "--protocol", protocol, "--model", "gru:1", "--mode", "batch",
                       "--batch-size", "8", "--count", "10")
    assert batch["ok"] >= 10 and batch["errors"] == {}, batch
    code = main(["bench", "--target", rest, "--protocol", protocol, "--model", "nosuchmodel", "--count", "5",
                 "--warmup", "0", "--json"])
    wrong = json.loads(capsys.readouterr().out)
    assert code == 1 and wrong["errors"] == {"HTTP_404": 5}, wrong


def test_v2_protocol_needs_a_model_and_no_stream(ours, capsys) -> None:
    assert main(["bench", "--target", ours, "--protocol", "v2", "--count", "5"]) == 2
    assert "--protocol v2 drives ModelInfer" in capsys.readouterr().err
    assert main(["bench", "--target", ours, "--protocol", "v2", "--model", "lstm", "--mode", "stream"]) == 2


def test_unknown_model_errors_are_counted_on_our_server(ours, capsys) -> None:
    code = main(["bench", "--target", ours, "--model", "nosuchmodel", "--count", "5", "--warmup", "0", "--json"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["errors"] == {"NOT_FOUND": 5}


def test_image_files_are_sent_encoded_and_decoded_by_our_server(ours, capsys, tmp_path: Path) -> None:
    from PIL import Image, ImageDraw

    small, scan = tmp_path / "digit.png", tmp_path / "scan.png"
    picture = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(picture).line([(14, 4), (14, 24)], fill=255, width=3)
    picture.save(small)
    page = Image.new("L", (200, 200), 235)  # dark ink on a light page with margins
    ImageDraw.Draw(page).line([(100, 40), (100, 160)], fill=20, width=14)
    page.save(scan)
    result = bench_json(capsys, "--target", ours, "--model", "lstm", "--image-file", str(small), "--image-file",
                        str(scan), "--count", "30")
    assert result["ok"] >= 30 and result["errors"] == {}
    assert result["request_bytes"] < 784  # the small PNG, not raw pixels
    assert main(["bench", "--target", ours, "--image-file", str(tmp_path / "missing.png"), "--count", "5"]) == 2
    assert "--image-file: cannot read" in capsys.readouterr().err
