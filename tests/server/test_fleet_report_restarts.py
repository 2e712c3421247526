"""The fleet report across a replica's restart (issue 21 §2): a real Prometheus scraping two real
replicas every second; labelled requests through an experiment; one replica stopped by SIGTERM and
started again on the same ports in the middle of it. `digits ab report --prometheus` counts, before and
after, exactly what was sent (integers equal to the Classify answers' arms), where the counters' current
values (the old report) forget the restarted replica's share and PromQL increase() extrapolates."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from digits import DigitsClient
from digits.cli import main as digits_cli
from digits.experiments.counter_history import increase_since
from tests.fleet import ConfigMapDir, start_replicas, wait_for
from tests.promproc import start_fleet_prometheus
from tests.serverproc import start_server

NAME = "reset"


@pytest.fixture(scope="module")
def setup(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = ConfigMapDir(tmp_path_factory.mktemp("restart-fleet") / "config", "experiments: []\n")
    flags = ("--model-config", str(config.path), "--poll-seconds", "1")
    replicas = start_replicas(model_repo, 2, *flags)
    prometheus = start_fleet_prometheus([r.metrics_port for r in replicas], tmp_path_factory.mktemp("restart-prom"))
    yield model_repo, flags, replicas, prometheus
    prometheus.stop()
    for replica in replicas:
        replica.stop()


def send(replica, images: np.ndarray, labels: np.ndarray, count: int, sent: Counter) -> None:
    """`count` labelled Classify calls (no routing key: each drawn by weight), counted by answered arm."""
    with DigitsClient(replica.target, timeout=30) as client:
        for i in range(count):
            answer = client.classify(images[i % len(images)], experiment=NAME, true_label=int(labels[i % len(labels)]))
            sent[answer.arm] += 1


def fleet_labelled(replicas, prometheus, capsys) -> dict[str, int]:
    capsys.readouterr()
    assert digits_cli(["--target", replicas[0].target, "ab", "report", NAME, "--prometheus", prometheus.url,
                       "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "exact across replica restarts" in report["latency_source"]
    return {arm["arm"]: int(arm.get("labelled", 0)) for arm in report["arms"]}


def scraped(prometheus, total: int) -> bool:
    """Prometheus' latest samples hold `total` labelled predictions over the live replicas."""
    got = prometheus.query(f'sum(digits_experiment_labelled_predictions_total{{experiment="{NAME}"}})')
    return got.get((), 0) == total


def test_counts_survive_a_replica_restart_exactly(setup, tiny_npz: Path, capsys) -> None:
    models, flags, replicas, prometheus = setup
    with np.load(tiny_npz) as data:
        images, labels = data["x_test"][:50], data["y_test"][:50].astype(int)
    with DigitsClient(replicas[0].target, timeout=30) as client:
        created = client.create_experiment(NAME, [("gru", 1), ("lstm", 1)])
    assert created.created_unix_time > 0
    for replica in replicas:
        wait_for(lambda r=replica: NAME in {e.name for e in DigitsClient(r.target).list_experiments()}, 30)
    config_entry = yaml.safe_load(Path(flags[1]).read_text())["experiments"][0]
    assert config_entry["created_unix_time"] == pytest.approx(created.created_unix_time)  # in the shared file

    sent: Counter = Counter()
    send(replicas[0], images, labels, 60, sent)
    send(replicas[1], images, labels, 40, sent)
    wait_for(lambda: scraped(prometheus, 100), 60, "Prometheus has scraped the first 100")
    assert fleet_labelled(replicas, prometheus, capsys) == dict(sent)

    old = replicas[1]
    assert old.stop() == 0, old.log()
    replicas[1] = start_server(models, *flags, "--port", str(old.port), "--metrics-port", str(old.metrics_port))
    wait_for(lambda: NAME in {e.name for e in DigitsClient(replicas[1].target).list_experiments()}, 30)
    send(replicas[1], images, labels, 30, sent)
    send(replicas[0], images, labels, 20, sent)
    # the counters' current values now miss the 40 the first run of replica 1 counted
    wait_for(lambda: scraped(prometheus, 60 + 20 + 30), 60, "Prometheus has scraped the restarted replica")
    assert sum(sent.values()) == 150
    assert fleet_labelled(replicas, prometheus, capsys) == dict(sent)

    # what the old report's PromQL gives instead: current values, or increase() (extrapolated, fractional)
    current = prometheus.query(f'sum(digits_experiment_labelled_predictions_total{{experiment="{NAME}"}})')[()]
    assert current == 110  # not the 150 sent
    age = max(1, int(prometheus.query("time()")[()] - created.created_unix_time))
    extrapolated = prometheus.query(
        f'sum(increase(digits_experiment_labelled_predictions_total{{experiment="{NAME}"}}[{age}s]))')[()]
    print(f"labelled sent 150; current values {current:g}; increase() over the age {extrapolated:.2f}")


@pytest.mark.parametrize(
    ("samples", "start", "expected"),
    [
        ([(10, 0), (11, 5), (12, 9)], 5, 9),  # a series created after the start counts from 0
        ([(1, 7), (2, 7), (11, 9), (12, 12)], 5, 5),  # counted before the start: the baseline
        ([(10, 4), (11, 8), (12, 2), (13, 6)], 5, 14),  # a reset: 8 before it, 6 after it
        ([(10, 4), (11, 8), (12, 0), (13, 0)], 5, 8),  # restarted, nothing since
        ([(1, 3), (10, 1), (11, 2)], 5, 2),  # reset between the baseline and the start
    ],
)
def test_increase_since_is_exact_across_resets(samples, start: float, expected: float) -> None:
    assert increase_since(samples, start) == expected


def test_a_restart_that_overtook_the_old_count_before_its_first_scrape_is_a_reset() -> None:
    samples = [(10, 0), (11, 18), (13, 25), (14, 30)]  # stopped at 18; the new process had 25 by t=13
    started = {10: 1.0, 11: 1.0, 13: 12.5, 14: 12.5}  # process_start_time_seconds of the same scrapes
    assert increase_since(samples, 5, started) == 18 + 30
    assert increase_since(samples, 5) == 30  # what the values alone can tell: 18 - 0 + 7 + 5
