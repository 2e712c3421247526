"""A real server with real SavedModels, a real Prometheus running our shipped scrape config and
rules: labelled traffic to two cells must come out of Prometheus' HTTP API exactly."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from digits import DigitsClient
from tests.promproc import PROMETHEUS_DIR, free_port, start_prometheus, write_config
from tests.serverproc import REPO, start_server
from tests.tools import require_tool

DASHBOARDS = REPO / "server" / "monitoring" / "grafana" / "dashboards"
CELLS = ("rnn", "gru")
LABELLED_IN_REQUEST = 24  # per cell, true labels from the data set
FED_BACK = 16  # per cell, unlabelled requests whose truth comes later by Feedback ...
WRONG_FEEDBACK = {"rnn": 3, "gru": 9}  # ... of which this many say a digit other than the prediction
# Grafana's variables, replaced so that each panel query is a plain PromQL expression.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s", "$model": ".+", "$version": ".+"}


@pytest.fixture(scope="module")
def stack(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """(server, prometheus): the digits server and a Prometheus scraping it every second."""
    binary = require_tool("prometheus")
    server = start_server(model_repo)
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    try:
        prometheus = start_prometheus(binary, write_config(workdir, server.metrics_port, port), workdir, port)
    except Exception:
        server.stop()
        raise
    try:  # counters must be seen at 0 before the traffic, or rate() misses the first increase
        wait_for(prometheus, "count by (model) (digits_labelled_predictions_total)", {cell: 4.0 for cell in CELLS})
    except BaseException:
        prometheus.stop()
        server.stop()
        raise
    yield server, prometheus
    prometheus.stop()
    assert server.stop() == 0, server.log()


@pytest.fixture(scope="module")
def traffic(stack, tiny_npz: Path) -> dict[str, dict[str, float]]:
    """Send the labelled traffic; returns per cell what the client counted."""
    server, _ = stack
    with np.load(tiny_npz) as data:
        images, labels = data["x_test"], data["y_test"]
    sent: dict[str, dict[str, float]] = {}
    with DigitsClient(server.target, timeout=30) as client:
        for offset, cell in enumerate(CELLS):
            start = offset * (LABELLED_IN_REQUEST + FED_BACK)
            correct = 0
            for i in range(start, start + LABELLED_IN_REQUEST):
                result = client.classify(images[i], model=cell, true_label=int(labels[i]))
                correct += result.digit == labels[i]
            for j, i in enumerate(range(start + LABELLED_IN_REQUEST, start + LABELLED_IN_REQUEST + FED_BACK)):
                result = client.classify(images[i], model=cell)
                wrong = j < WRONG_FEEDBACK[cell]
                answer = client.feedback(result.request_id, (result.digit + 1) % 10 if wrong else result.digit)
                assert answer.correct is not wrong and (answer.model, answer.version) == (cell, 1)
                correct += not wrong
            labelled = LABELLED_IN_REQUEST + FED_BACK
            sent[cell] = {"requests": labelled, "labelled": labelled, "accuracy": correct / labelled}
    return sent


def wait_for(prometheus, expr: str, expected: dict[str, float], timeout: float = 45.0) -> dict[str, float]:
    """Poll an instant query until its value per `model` equals `expected` (to 1e-9); returns the last values."""
    deadline = time.monotonic() + timeout
    while True:
        got = {dict(labels).get("model", ""): value for labels, value in prometheus.query(expr).items()}
        if all(cell in got and abs(got[cell] - value) < 1e-9 for cell, value in expected.items()):
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{expr}: expected {expected}, Prometheus says {got}")
        time.sleep(0.5)


def test_both_shipped_scrape_jobs_are_up(stack, traffic) -> None:
    _, prometheus = stack
    deadline = time.monotonic() + 30  # a scrape that timed out on a loaded machine is "down" for a second
    while True:
        health = {t["labels"]["job"]: t["health"] for t in prometheus.api("targets")["activeTargets"]}
        if health == {"digits-server": "up", "prometheus": "up"}:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"scrape targets: {health}")
        time.sleep(0.5)


def test_request_counts_match_what_was_sent(stack, traffic) -> None:
    _, prometheus = stack
    classify = {cell: sent["requests"] for cell, sent in traffic.items()}
    wait_for(prometheus, 'sum by (model) (digits_requests_total{method="Classify", code="OK"})', classify)
    feedback = {cell: FED_BACK for cell in CELLS}
    wait_for(prometheus, 'sum by (model) (digits_requests_total{method="Feedback", code="OK"})', feedback)
    labelled = {cell: sent["labelled"] for cell, sent in traffic.items()}
    wait_for(prometheus, "sum by (model) (digits_labelled_predictions_total)", labelled)


def test_live_accuracy_per_cell_equals_the_clients(stack, traffic) -> None:
    _, prometheus = stack
    expected = {cell: sent["accuracy"] for cell, sent in traffic.items()}
    # the cells' accuracies differ, so a rule that mixed up the cells' series would show
    assert len(set(expected.values())) == len(expected), expected
    wait_for(prometheus, "model_version:digits_live_accuracy:ratio_5m", expected)
    wait_for(prometheus, "model_version:digits_live_accuracy:ratio_1h", expected)
    wait_for(prometheus, 'sum by (model) (digits_labelled_predictions_total{source="feedback"})',
             {cell: FED_BACK for cell in CELLS})


def test_latency_percentile_rules_return_numbers(stack, traffic) -> None:
    _, prometheus = stack
    deadline = time.monotonic() + 45
    while True:
        p99 = {dict(k)["model"]: v for k, v in prometheus.query("model_version:digits_request_duration_seconds:p99_5m").items()}
        if all(math.isfinite(p99.get(cell, math.nan)) for cell in CELLS):  # NaN until a scrape saw the traffic
            break
        if time.monotonic() > deadline:
            pytest.fail(f"no finite p99 for every cell: {p99}")
        time.sleep(0.5)
    for cell in CELLS:
        assert math.isfinite(p99[cell]) and 0 < p99[cell] < 10, p99
    wait_for(prometheus, "model_version:digits_request_errors:ratio_rate5m", {cell: 0.0 for cell in CELLS})


def test_model_metadata_reaches_prometheus(stack, traffic, model_repo: Path) -> None:
    _, prometheus = stack
    offline = {}
    for cell in CELLS:
        offline[cell] = json.loads((model_repo / cell / "1" / "metadata.json").read_text())["test_accuracy"]
    wait_for(prometheus, "max by (model) (digits_model_test_accuracy_ratio)", offline)
    wait_for(prometheus, 'max by (model) (digits_model_state{state="AVAILABLE"})', {cell: 1.0 for cell in CELLS})


def promql_expressions() -> list[tuple[str, str]]:
    """(where, expression) for every rule in rules/*.yml and every panel/variable query in the dashboards."""
    found: list[tuple[str, str]] = []
    for path in sorted((PROMETHEUS_DIR / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found.append((f"{path.name}: {rule.get('record') or rule.get('alert')}", rule["expr"]))
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        panels = [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]
        for panel in panels:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']} {target['refId']}", target["expr"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            match = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            if match:  # Grafana's label_values(selector, label): the selector must be valid PromQL
                found.append((f"{path.name}: variable {variable['name']}", match.group(1)))
    return found


def grafana_to_promql(expr: str) -> str:
    """A panel query with Grafana's variables replaced by typical values (any other template
    variable, e.g. a later dashboard's $experiment, by the regex `.+`)."""
    for variable, value in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".+", expr)


def test_every_rule_and_panel_query_runs_on_real_prometheus(stack, traffic) -> None:
    _, prometheus = stack
    expressions = promql_expressions()
    assert len(expressions) > 40
    failures = []
    for where, expr in expressions:
        try:
            prometheus.api("query", query=grafana_to_promql(expr))
        except ValueError as exc:
            failures.append(f"{where}: {exc}")
    assert not failures, "\n".join(failures)


def test_rule_groups_are_loaded_and_healthy(stack, traffic) -> None:
    _, prometheus = stack
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        if rules and all(r.get("lastEvaluation", "").startswith("2") and r["health"] == "ok" for r in rules):
            break
        if time.monotonic() > deadline:
            pytest.fail(f"rules not all evaluated and healthy: {[(r['name'], r['health'], r.get('lastError')) for r in rules]}")
        time.sleep(0.5)
    shipped = sum(len(g["rules"]) for p in (PROMETHEUS_DIR / "rules").glob("*.yml") for g in yaml.safe_load(p.read_text())["groups"])
    assert len(rules) == shipped
    firing = [a for a in prometheus.api("alerts")["alerts"] if a["state"] == "firing"]
    assert not firing, firing


def test_promtool_check_metrics_is_clean_on_the_live_endpoint(stack, traffic) -> None:
    server, _ = stack
    promtool = require_tool("promtool")
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read()
    for family in ("digits_requests_total", "digits_confusion_total", "digits_model_info", "digits_build_info",
                   "digits_feedback_store_predictions", "digits_prediction_confidence_bucket"):
        assert family.encode() in text, family
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


def test_the_dashboard_shows_data_after_the_traffic(stack, traffic) -> None:
    """Every panel of the serving dashboard has data, except the ones about rare events (and Envoy's)."""
    _, prometheus = stack
    quiet = {"Rejected, queue full"}  # nothing was rejected
    dashboard = json.loads((DASHBOARDS / "digits.json").read_text())
    # This stack has no Envoy: the Envoy row's metric names are checked against a real Envoy's
    # /stats/prometheus in test_monitoring_files.py.
    panels = [p for p in dashboard["panels"] if p["type"] != "row" and p["title"] not in quiet
              and "envoy_" not in json.dumps(p.get("targets", []))]
    deadline = time.monotonic() + 30  # on a loaded machine a scrape can time out (1 s) and go stale
    while True:
        empty = [p["title"] for p in panels
                 if not any(prometheus.query(grafana_to_promql(t["expr"])) for t in p["targets"])]
        if not empty:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"panels without data: {empty}")
        time.sleep(1)
