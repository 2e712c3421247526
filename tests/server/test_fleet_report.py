"""`digits ab report NAME --prometheus URL`: a real Prometheus scraping three real replicas; the
fleet report's counts equal the sum of the replicas' own GetExperimentReport counts, and its
statistics — fixed-horizon and always-valid, guardrails and verdict words — are those of the
shared statistics modules on the summed counts (not any one replica's share)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from digits import DigitsClient
from digits.cli import main as digits_cli
from digits.experiments import sequential as seq
from digits.experiments import statistics as stats
from digits.experiments.always_valid import INDEPENDENT, PAIRED, AlwaysValid, Guardrail, guardrail_level
from digits.experiments.verdict import always_valid_verdict
from tests.fleet import ConfigMapDir, start_replicas, wait_for
from tests.promproc import start_fleet_prometheus

NAME = "fleet-ab"


@pytest.fixture(scope="module")
def fleet(model_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = ConfigMapDir(tmp_path_factory.mktemp("report-fleet") / "config", "experiments: []\n")
    key = tmp_path_factory.mktemp("report-key") / "feedback.key"
    key.write_text("another-fleet-key-0123456789")
    replicas = start_replicas(model_repo, 3, "--model-config", str(config.path), "--poll-seconds", "1",
                              "--feedback-key-file", str(key))
    yield replicas
    for replica in replicas:
        assert replica.stop() == 0, replica.log()


@pytest.fixture(scope="module")
def prometheus(fleet, tmp_path_factory: pytest.TempPathFactory):
    process = start_fleet_prometheus([r.metrics_port for r in fleet], tmp_path_factory.mktemp("prometheus"))
    yield process
    process.stop()


def drive_traffic(fleet, images: np.ndarray, labels: np.ndarray) -> None:
    """Labelled batches through every replica (several keys, so both arms serve), and feedback
    for unlabelled ones sent to the next replica."""
    for i, replica in enumerate(fleet):
        with DigitsClient(replica.target, timeout=30) as client:
            for k in range(6):
                start = (i * 6 + k) % 30
                client.classify_batch(images[start:start + 5], experiment=NAME, routing_key=f"user-{i}-{k}",
                                      true_labels=[int(x) for x in labels[start:start + 5]])
            unlabelled = client.classify_batch(images[:4], experiment=NAME, routing_key=f"feedback-{i}")
        with DigitsClient(fleet[(i + 1) % 3].target, timeout=30) as other:
            for index in range(4):
                other.feedback(unlabelled.request_id, int(labels[index]), index=index)


def summed(reports, field: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for report in reports:
        for arm in report.arms:
            out[arm.arm] = out.get(arm.arm, 0) + getattr(arm, field)
    return out


def test_the_fleet_report_equals_the_sum_of_the_replicas(fleet, prometheus, tiny_npz: Path, capsys) -> None:
    with np.load(tiny_npz) as data:
        images, labels = data["x_test"][:40], data["y_test"][:40].astype(int)
    with DigitsClient(fleet[0].target, timeout=30) as client:
        client.create_experiment(NAME, [("gru", 1), ("lstm", 1)], shadow_percent=50)
    for replica in fleet:
        wait_for(lambda r=replica: NAME in {e.name for e in DigitsClient(r.target).list_experiments()}, 30)
    drive_traffic(fleet, images, labels)
    reports = []
    for replica in fleet:
        with DigitsClient(replica.target, timeout=30) as client:
            reports.append(client.experiment_report(NAME))
    labelled, requests = summed(reports, "labelled"), summed(reports, "requests")
    assert sum(labelled.values()) == 3 * (6 * 5 + 4) and len(labelled) == 2

    def scraped() -> bool:
        got = prometheus.query(f'sum(digits_experiment_labelled_predictions_total{{experiment="{NAME}"}})')
        sent = prometheus.query(f'sum(digits_requests_total{{experiment="{NAME}"}})')
        return got.get((), 0) == sum(labelled.values()) and sent.get((), 0) == sum(requests.values())

    wait_for(scraped, 60, "Prometheus has scraped every replica's counts")
    capsys.readouterr()
    assert digits_cli(["--target", fleet[1].target, "ab", "report", NAME, "--prometheus", prometheus.url,
                       "--json"]) == 0
    fleet_report = json.loads(capsys.readouterr().out)
    arms = {arm["arm"]: arm for arm in fleet_report["arms"]}
    for field in ("labelled", "correct", "requests", "errors"):
        expected = summed(reports, field)
        assert {arm: int(arms[arm].get(field, 0)) for arm in expected} == expected, field
    pair = fleet_report["pairs"][0]
    for field in ("both_right", "only_a_right", "only_b_right", "both_wrong", "shadow_agree", "shadow_disagree"):
        assert int(pair.get(field, 0)) == sum(getattr(r.pairs[0], field) for r in reports), field
    # Estimated, no labels: the CBPE sums are counters, so the fleet's are the replicas' sums exactly.
    for field in ("estimated_predictions", "estimated_uncalibrated"):
        expected = summed(reports, field)
        assert {arm: int(arms[arm].get(field, 0)) for arm in expected} == expected, field
    for field in ("estimated_calibrated_sum", "estimated_variance_sum"):
        for arm in arms:
            replicas = sum(getattr(a, field) for r in reports for a in r.arms if a.arm == arm)
            assert arms[arm][field] == pytest.approx(replicas, rel=1e-9), field
    for arm in arms.values():
        assert arm["estimated_accuracy"] == pytest.approx(arm["estimated_calibrated_sum"] /
                                                          int(arm["estimated_predictions"]), rel=1e-12)
        assert arm["estimate_basis"] == "calibrated (reference profile)"  # model_repo's versions have profiles
    agree, disagree = int(pair.get("shadow_agree", 0)), int(pair.get("shadow_disagree", 0))
    assert agree + disagree > 0 and pair.get("shadow_agreement_rate", 0.0) == pytest.approx(agree / (agree + disagree))
    assert fleet_report["label_free_method"].startswith("estimated, no labels")
    a, b = arms["gru"], arms["lstm"]
    paired = stats.PairedOutcomes(*(int(pair.get(f, 0)) for f in ("both_right", "only_a_right", "only_b_right",
                                                                   "both_wrong")))
    comparison = stats.compare(int(a.get("correct", 0)), int(a["labelled"]), int(b.get("correct", 0)),
                               int(b["labelled"]), paired)
    assert pair.get("z_test_p_value", 0.0) == pytest.approx(comparison.z_test_p)
    assert pair.get("mcnemar_p_value", 0.0) == pytest.approx(comparison.mcnemar_p)
    assert pair["verdict"] and int(pair.get("more_needed_per_arm", 0)) == comparison.more_needed_per_arm
    low, high = stats.wilson_interval(int(a.get("correct", 0)), int(a["labelled"]))
    assert (a["accuracy_low"], a["accuracy_high"]) == (pytest.approx(low), pytest.approx(high))
    assert "summed over instances" in fleet_report["latency_source"]
    assert_always_valid_on_the_sums(fleet_report, reports, paired)
    assert fleet_report["figures"]["verdict"] == "always-valid"
    assert "pairs.sequence_low" in fleet_report["figures"]["always-valid"]["fields"]
    assert "pairs.z_test_p_value" in fleet_report["figures"]["fixed-horizon"]["fields"]

    assert digits_cli(["--target", fleet[0].target, "ab", "report", NAME, "--prometheus", prometheus.url,
                       "--json", "--fixed-horizon"]) == 0
    fixed = json.loads(capsys.readouterr().out)["pairs"][0]
    assert fixed["verdict_basis"] == "fixed-horizon" and fixed["verdict"] == fixed["fixed_horizon_verdict"]
    assert fixed.get("always_valid_p_value", 0.0) == pytest.approx(pair.get("always_valid_p_value", 0.0))

    assert digits_cli(["--target", fleet[2].target, "ab", "report", NAME, "--prometheus", prometheus.url,
                       "--since", "10m"]) == 0  # the text form, over a window (increase() extrapolates)
    text = capsys.readouterr().out
    assert "gru" in text and "lstm" in text
    assert "fixed-horizon (valid for one look at a planned sample size):" in text
    assert "always-valid (valid at every look; the verdicts rest on the always-valid tests):" in text
    assert "Fleet: one look at the counters summed over the replicas" in text and "sliding window" in text
    assert digits_cli(["--target", fleet[2].target, "ab", "report", NAME, "--prometheus", prometheus.url,
                       "--since", "ten minutes"]) == 2
    assert "--since" in capsys.readouterr().err


def assert_always_valid_on_the_sums(fleet_report: dict, reports: list, paired: stats.PairedOutcomes) -> None:
    """The fleet's always-valid figures are sequential.py's on the replicas' summed counts (one look;
    one pair, so Holm leaves the p-value as it is and the sequence is at 95%), its guardrails those
    of the summed requests and errors, and its verdict the single-server words for them."""
    pair, arms = fleet_report["pairs"][0], {arm["arm"]: arm for arm in fleet_report["arms"]}
    ca, na = summed(reports, "correct")["gru"], summed(reports, "labelled")["gru"]
    cb, nb = summed(reports, "correct")["lstm"], summed(reports, "labelled")["lstm"]
    if paired.total < min(na, nb):
        test, p_value = INDEPENDENT, seq.independent_p_value(ca, na, cb, nb)
        sequence = seq.independent_interval(ca, na, cb, nb, alpha=0.05)
    else:
        test, p_value = PAIRED, seq.paired_p_value(paired.only_a_right, paired.only_b_right)
        sequence = seq.paired_interval(paired.only_a_right, paired.only_b_right, paired.total, alpha=0.05)
    assert pair["always_valid_test"] == test
    assert pair.get("always_valid_p_value", 0.0) == pytest.approx(p_value, rel=1e-9)
    assert pair.get("always_valid_p_holm", 0.0) == pytest.approx(p_value, rel=1e-9)
    assert (pair.get("sequence_low", 0.0), pair.get("sequence_high", 0.0)) == pytest.approx(sequence, abs=1e-12)
    assert pair["sequence_confidence"] == pytest.approx(0.95)

    requests, errors = summed(reports, "requests"), summed(reports, "errors")
    latency, error = fleet_report["guardrails"]
    assert (latency["metric"], error["metric"], error["arm"], error["baseline_arm"]) == (
        "latency", "errors", "lstm", "gru")
    level = guardrail_level(0.05, 1)  # alpha / 2 over the 3 guardrails of one candidate (latency, errors, estimated)
    assert level == pytest.approx(0.05 / 2 / 3)
    low, high = seq.independent_interval(errors["lstm"], requests["lstm"], errors["gru"], requests["gru"], alpha=level)
    assert float(error.get("excess_low", 0.0)) == pytest.approx(low - 0.01, abs=1e-12)
    assert float(error.get("excess_high", 0.0)) == pytest.approx(high - 0.01, abs=1e-12)
    for arm in ("gru", "lstm"):  # the fleet's mean latency is the replicas' means weighted by their requests
        weighted = sum(a.latency_mean_seconds * a.requests for r in reports for a in r.arms if a.arm == arm)
        assert arms[arm]["latency_mean_seconds"] == pytest.approx(weighted / requests[arm], rel=1e-6)

    guards = [Guardrail(g["arm"], g["baseline_arm"], g["metric"], 0.0, 0.0, 0.0, 0.0, float(g.get("excess_low", 0.0)),
                        float(g.get("excess_high", 0.0))) for g in fleet_report["guardrails"]]
    assert [g.status for g in guards] == [g["status"] for g in fleet_report["guardrails"]]
    breached = [g for g in guards if g.status == "breached"]
    expected = always_valid_verdict("gru", "lstm", AlwaysValid(test, p_value, p_value, *sequence, 0.95, 0.05), breached)
    assert pair["verdict_basis"] == "always-valid" and pair["verdict"] == expected
    assert pair["fixed_horizon_verdict"].startswith(("no significant difference", "gru beats", "lstm beats"))
