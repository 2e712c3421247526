"""A/B without labels on a real server (docs/ab-decisions.md "A/B without labels"): trainer-made
models, traffic sent WITHOUT labels, and the experiment report's "estimated, no labels" figures.

- `shadowed`: stable = the tuned LSTM, candidate = a copy of it whose reference profile is removed,
  every request mirrored. Each arm's estimate must be exactly the mean calibrated probability the
  test computes itself from the probabilities the server returned and the version's reference
  profile (the raw winning probability for the copy without one, which the report says), and the
  shadow agreement of two copies of one model is 100%.
- `weak`: stable = the tuned LSTM, candidate = the seed recipe's 1-epoch GRU. `digits ab rollout
  --max-estimated-drop 0.05` rolls it back on the label-free guardrail without a single label; the
  same traffic without the flag never decides (no labels, nothing to step on).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from digits import DigitsClient
from digits.cli import main as digits_cli
from digits.monitoring.profile import PROFILE_FILE, ReferenceProfile
from tests.serverproc import start_server

REQUESTS = 240


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, model_repo: Path, tuned_lstm: Path) -> Path:
    root = tmp_path_factory.mktemp("label-free-models")
    lstm, gru = tuned_lstm / "lstm" / "1", model_repo / "gru" / "1"
    for name, candidate in (("shadowed", lstm), ("weak", gru)):
        shutil.copytree(lstm, root / name / "1")
        shutil.copytree(candidate, root / name / "2")
    (root / "shadowed" / "2" / PROFILE_FILE).unlink()
    return root


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("label-free-config") / "models.yaml"
    config.write_text(yaml.safe_dump({
        "models": {name: {"version_policy": "all", "labels": {"stable": 1}} for name in ("shadowed", "weak")},
        "experiments": [
            {"name": "shadowed", "shadow_percent": 100,
             "arms": [{"name": "stable", "model": "shadowed", "version_label": "stable", "weight": 50},
                      {"name": "candidate", "model": "shadowed", "version": 2, "weight": 50}]},
            {"name": "weak", "shadow_percent": 0,
             "arms": [{"name": "stable", "model": "weak", "version_label": "stable", "weight": 100},
                      {"name": "candidate", "model": "weak", "version": 2, "weight": 0}]},
        ],
    }))
    proc = start_server(repo, "--model-config", str(config), "--poll-seconds", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def unseen(tiny_npz: Path) -> np.ndarray:
    with np.load(tiny_npz) as data:
        return data["x_test"]


def test_report_shows_each_arms_estimate_and_the_shadow_agreement(server, repo: Path, unseen: np.ndarray,
                                                                   capsys) -> None:
    table = ReferenceProfile.loads((repo / "shadowed" / "1" / PROFILE_FILE).read_text()).calibration
    confidence: dict[str, list[float]] = {"stable": [], "candidate": []}
    with DigitsClient(server.target, timeout=30) as client:
        for i in range(REQUESTS):  # no true_label anywhere
            result = client.classify(unseen[i % len(unseen)], experiment="shadowed", routing_key=f"user-{i}")
            confidence[result.arm].append(max(result.probabilities))
        report = client.experiment_report("shadowed")
    arms = {a.arm: a for a in report.arms}
    assert all(confidence.values()) and sum(a.estimated_predictions for a in report.arms) == REQUESTS
    expected = {"stable": table.calibrated(np.asarray(confidence["stable"], dtype=np.float64)),
                "candidate": np.asarray(confidence["candidate"], dtype=np.float64)}  # no profile: raw
    for name, p in expected.items():
        arm = arms[name]
        assert arm.labelled == 0 and arm.estimated_predictions == len(p)
        assert arm.estimated_calibrated_sum == pytest.approx(p.sum(), rel=1e-6)
        assert arm.estimated_variance_sum == pytest.approx((p * (1 - p)).sum(), rel=1e-5)
        assert arm.estimated_accuracy == pytest.approx(p.mean(), rel=1e-6)
        assert arm.estimated_accuracy_low < arm.estimated_accuracy < arm.estimated_accuracy_high
    assert arms["stable"].estimate_basis == "calibrated (reference profile)" and arms["stable"].estimated_uncalibrated == 0
    assert arms["candidate"].estimate_basis == "raw confidence (no reference profile loaded)"
    assert arms["candidate"].estimated_uncalibrated == arms["candidate"].estimated_predictions
    (pair,) = report.pairs
    assert pair.shadow_agree == REQUESTS and pair.shadow_disagree == 0  # two copies of one model
    assert pair.shadow_agreement_rate == 1.0 and 0.98 < pair.shadow_agreement_low < 1.0
    assert pair.estimated_sequence_low < pair.estimated_difference < pair.estimated_sequence_high
    assert pair.verdict.startswith("no labelled traffic yet")  # the verdict stays a labelled one, unmoved
    assert pair.always_valid_test == "" and report.label_free_method.startswith("estimated, no labels")

    capsys.readouterr()
    assert digits_cli(["--target", server.target, "ab", "report", "shadowed"]) == 0
    text = capsys.readouterr().out
    block = text[text.index("estimated, no labels (CBPE; not part of any verdict"):]
    assert "calibrated (reference profile)" in block and "raw confidence" in block and "100.0%" in block
    assert digits_cli(["--target", server.target, "ab", "report", "shadowed", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert "arms.estimated_accuracy" in document["figures"]["estimated, no labels"]["fields"]

    metrics = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    series = 'digits_experiment_calibrated_probability_sum_total{arm="stable",experiment="shadowed"}'
    (line,) = [line for line in metrics.splitlines() if line.startswith(series)]
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(arms["stable"].estimated_calibrated_sum, rel=1e-9)
    print(block)  # shown with pytest -rA


def _rollout_without_labels(server, unseen: np.ndarray, *flags: str, capsys) -> tuple[int, str]:
    """`digits ab rollout weak` while unlabelled traffic flows; (exit code, output)."""
    done, result = threading.Event(), []

    def controller() -> None:
        try:
            result.append(digits_cli(["--target", server.target, "--timeout", "30", "ab", "rollout", "weak",
                                      "--steps", "20,50", "--interval", "0.5", *flags]))
        finally:
            done.set()

    thread = threading.Thread(target=controller)
    thread.start()
    with DigitsClient(server.target, timeout=30) as client:
        i = 0
        while not done.is_set():
            client.classify_batch(unseen[i % 200: i % 200 + 8], experiment="weak")  # never a label
            i += 8
            time.sleep(0.01)
    thread.join()
    out = capsys.readouterr().out
    print(out)
    return result[0], out


def test_without_the_flag_a_rollout_without_labels_never_decides(server, unseen: np.ndarray, capsys) -> None:
    code, out = _rollout_without_labels(server, unseen, "--max-seconds", "4", capsys=capsys)
    assert code == 5, out  # stopped by --max-seconds: nothing labelled to decide on


def test_weak_candidate_is_rolled_back_on_its_estimated_accuracy_without_labels(
        server, unseen: np.ndarray, capsys) -> None:
    code, out = _rollout_without_labels(server, unseen, "--max-estimated-drop", "0.05", "--max-seconds", "120",
                                        capsys=capsys)
    assert code == 3, out
    assert "rollback candidate (weight 0%): guardrail breached: estimated accuracy (estimated, no labels)" in out
    with DigitsClient(server.target, timeout=30) as client:
        report = client.experiment_report("weak")
    arms = {a.arm: a for a in report.arms}
    assert arms["candidate"].labelled == 0 and arms["stable"].labelled == 0  # not one label
    assert arms["stable"].estimated_accuracy - arms["candidate"].estimated_accuracy > 0.05
    (pair,) = report.pairs  # a = stable, b = candidate: the sequence of stable - candidate is above 5 points
    assert pair.estimated_sequence_low > 0.05
    assert report.decisions[-1].decision == "rollback" and "estimated accuracy" in report.decisions[-1].reason
    assert report.experiment.paused and [a.weight for a in report.experiment.arms] == [100, 0]


def test_bad_max_estimated_drop_is_refused(server, capsys) -> None:
    assert digits_cli(["--target", server.target, "ab", "rollout", "weak", "--max-estimated-drop", "5"]) == 2
    assert "--max-estimated-drop" in capsys.readouterr().err
