"""deploy/envoy: the real Envoy binary accepts every committed config, and requests sent through it
to three real replicas reach every replica."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from tests.envoyproc import ENVOY_DIR, Fleet, grpc_routes, loopback_module, requests_per_replica, validate

ROUTES_TO_RETRY = ("/digits.v1.DigitClassifier/", "/inference.GRPCInferenceService/", "/tensorflow.serving.")


def committed_configs() -> list[Path]:
    return sorted(ENVOY_DIR.glob("*.yaml"))


@pytest.mark.parametrize("config", committed_configs(), ids=lambda p: p.name)
def test_envoy_validates_every_committed_config(config: Path) -> None:
    result = validate(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"configuration '{config}' OK" in result.stdout + result.stderr


def test_envoy_validates_the_loopback_variant(tmp_path: Path) -> None:
    config = loopback_module().render(["127.0.0.1:50061", "127.0.0.1:50062", "127.0.0.1:50063"], 8080, 9901)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_validation_is_real(tmp_path: Path) -> None:
    """A misspelt field fails `--mode validate` (the tests above can fail)."""
    broken = (ENVOY_DIR / "envoy.yaml").read_text().replace("outlier_detection:", "outlier_detecton:", 1)
    path = tmp_path / "envoy.yaml"
    path.write_text(broken)
    result = validate(path)
    assert result.returncode != 0 and "outlier_detecton" in result.stdout + result.stderr


def test_inference_is_retried_admin_calls_are_not() -> None:
    """Retries on UNAVAILABLE / reset / connect failure for the idempotent services; the admin service
    (reload, experiments) is never retried and Feedback only when it cannot have reached a replica."""

    def route_for(path: str) -> dict:
        for route in grpc_routes():  # Envoy takes the first match
            match = route["match"]
            if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
                return route["route"]
        raise AssertionError(f"no route for {path}")

    for path in ("/digits.v1.DigitClassifier/Classify", "/digits.v1.DigitClassifier/ClassifyBatch",
                 "/digits.v1.DigitClassifier/ListModels", "/inference.GRPCInferenceService/ModelInfer",
                 "/tensorflow.serving.PredictionService/Predict"):
        retry_on = set(route_for(path)["retry_policy"]["retry_on"].split(","))
        assert {"unavailable", "cancelled", "reset", "connect-failure"} <= retry_on, path
    assert "retry_policy" not in route_for("/digits.v1.DigitsAdmin/CreateExperiment")
    feedback = set(route_for("/digits.v1.DigitClassifier/Feedback")["retry_policy"]["retry_on"].split(","))
    assert not feedback & {"unavailable", "reset", "5xx"}
    config = yaml.safe_load((ENVOY_DIR / "envoy.yaml").read_text())
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    # Feedback hashed by request id; the REST port's own cluster (digits_http)
    assert set(clusters) == {"digits", "digits_feedback", "envoy_admin", "digits_http"}
    for cluster in (clusters["digits"], clusters["digits_feedback"]):
        assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == "digits.v1.DigitClassifier"
    assert clusters["digits_http"]["health_checks"][0]["http_health_check"]["path"] == "/v2/health/ready"
    cluster = clusters["digits"]
    assert cluster["health_checks"][0]["grpc_health_check"]["service_name"] == "digits.v1.DigitClassifier"
    assert "http2_protocol_options" in cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
    assert cluster["outlier_detection"] and cluster["circuit_breakers"]["thresholds"]
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"


def test_every_replica_serves_requests_sent_through_envoy(fleet: Fleet) -> None:
    """Three real replicas behind a real Envoy; one client channel (one connection, to Envoy):
    Envoy spreads the requests, not the connection, so every replica answers some."""
    from digits.v1 import digits_pb2 as pb
    from digits.v1 import digits_pb2_grpc

    fleet.restore()
    before = requests_per_replica(fleet)
    images = np.random.default_rng(0).integers(0, 256, (300, 28, 28), dtype=np.uint8)
    with grpc.insecure_channel(fleet.envoy.target) as channel:
        stub = digits_pb2_grpc.DigitClassifierStub(channel)
        futures = [stub.Classify.future(pb.ClassifyRequest(model_spec=pb.ModelSpec(name="gru"),
                                                           image=pb.Image(pixels=image.tobytes())), timeout=30)
                   for image in images]
        answers = [f.result() for f in futures]
        models = stub.ListModels(pb.ListModelsRequest(), timeout=30)
    assert all(a.served_by.model == "gru" and len(a.probabilities) == 10 for a in answers)
    assert "gru" in {m.name for m in models.models}
    counts = [after - earlier for after, earlier in zip(requests_per_replica(fleet), before)]
    print(f"\nClassify requests per replica through Envoy: {counts}")
    assert sum(counts) == len(images)
    assert all(count >= len(images) / 10 for count in counts), counts
    assert len(fleet.envoy.healthy()) == 3
