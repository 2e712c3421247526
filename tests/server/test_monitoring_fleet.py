"""Label-free monitoring across a fleet: three real replicas, a real Prometheus scraping them.
The fleet's estimated accuracy and interval, computed in PromQL from the summed counters
(docs/monitoring.md), equal the three replicas' own figures (GetModelStatus) combined."""

from __future__ import annotations

import json
import math
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from digits import DigitsClient
from digits.cli import main as digits_cli
from digits.monitoring.estimate import AccuracyEstimate
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.fleet import start_replicas, wait_for
from tests.promproc import SERVER_JOB, free_port, start_prometheus, write_config
from tests.tools import require_tool

SENT = (300, 150, 50)  # unlabelled predictions per replica
SELECT = 'model="lstm",version="1"'
FLEET_ESTIMATE = f"sum(digits_estimated_correct_total{{{SELECT}}}) / sum(digits_monitoring_predictions_total{{{SELECT}}})"
FLEET_HALF_WIDTH = (f"1.959964 * sqrt(sum(digits_estimated_correct_variance_total{{{SELECT}}}))"
                    f" / sum(digits_monitoring_predictions_total{{{SELECT}}})")


@pytest.fixture(scope="module")
def fleet(model_repo: Path):
    replicas = start_replicas(model_repo, 3)
    yield replicas
    for replica in replicas:
        assert replica.stop() == 0, replica.log()


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory: pytest.TempPathFactory):
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    path = write_config(workdir, fleet[0].metrics_port, port)
    config = yaml.safe_load(path.read_text())
    for job in config["scrape_configs"]:
        if job["job_name"] == SERVER_JOB:
            job["static_configs"] = [{"targets": [f"127.0.0.1:{r.metrics_port}" for r in fleet]}]
    path.write_text(yaml.safe_dump(config))
    process = start_prometheus(binary, path, workdir, port)
    yield process
    process.stop()


def replica_monitoring(replica) -> pb.VersionMonitoring:
    with grpc.insecure_channel(replica.target) as channel:
        status = pb_grpc.DigitClassifierStub(channel).GetModelStatus(pb.GetModelStatusRequest(name="lstm"), timeout=30)
    (version,) = [v for v in status.versions if v.version == 1]
    return version.monitoring


def test_fleet_estimate_from_promql_equals_the_replicas_combined(fleet, prometheus, tiny_npz: Path, capsys) -> None:
    with np.load(tiny_npz) as data:
        images = data["x_test"]
    for replica, count in zip(fleet, SENT):
        with DigitsClient(replica.target, timeout=30) as client:
            for start in range(0, count, 50):
                client.classify_batch(images[start:start + 50], "lstm")
    views = [replica_monitoring(replica) for replica in fleet]  # also flushes each replica's buffer
    assert [v.predictions for v in views] == list(SENT)
    combined = AccuracyEstimate(0, 0.0, 0.0)
    for view in views:
        half = (view.estimated_high - view.estimated_low) / 2  # unclipped here: tiny models sit mid-range
        combined = combined + AccuracyEstimate(view.predictions, view.estimated_accuracy * view.predictions,
                                               (half * view.predictions / 1.959964) ** 2)

    def scraped() -> bool:
        got = prometheus.query(f"sum(digits_monitoring_predictions_total{{{SELECT}}})")
        return bool(got) and next(iter(got.values())) == sum(SENT)

    wait_for(scraped, 60, "Prometheus has scraped every replica's monitoring counters")
    (estimate,) = prometheus.query(FLEET_ESTIMATE).values()
    (half_width,) = prometheus.query(FLEET_HALF_WIDTH).values()
    assert estimate == pytest.approx(combined.accuracy, abs=1e-9)
    low, high = combined.interval()
    assert half_width == pytest.approx((high - low) / 2, rel=1e-6)
    assert 0 < low < estimate < high < 1
    capsys.readouterr()  # `digits monitor --prometheus`: the same fleet figures
    assert digits_cli(["--target", fleet[0].target, "monitor", "lstm", "--prometheus", prometheus.url, "--json"]) == 0
    (reported,) = [v for v in json.loads(capsys.readouterr().out)["versions"] if v["version"] == 1]
    assert reported["predictions"] == sum(SENT) and reported["estimated"] == pytest.approx(estimate)
    assert reported["estimated_interval"] == pytest.approx([low, high])
    assert reported["drifting"] == [] and len(reported["signals"]) == 9
    alarms = prometheus.query(f"max(digits_drift_alarm{{{SELECT}}})")
    assert list(alarms.values()) == [0.0]  # clean test digits: no replica alarms
    assert math.isclose(next(iter(prometheus.query("max(digits_drift_log_threshold)").values())), math.log(1e8))
