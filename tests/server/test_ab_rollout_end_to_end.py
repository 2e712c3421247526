"""`digits ab rollout` end to end: a real server with trainer-made models, the real CLI driving the
rollout through the admin RPCs, and labelled live traffic (Classify with true labels) sent while
it runs. A weak candidate (the seed-recipe GRU, 1 epoch) against a strong stable (an LSTM trained
with the tuned recipe) is rolled back; the reverse is promoted and the `stable` label moves (in the
config file too); an A/A rollout (two copies of the LSTM) ends "no difference" at its horizon.

Each case is one model name with two versions, the stable arm `MODEL@stable`, the candidate
`MODEL:2`, so promotion can move the label. `weak` and `strong` split the traffic (independent
design); `same` mirrors every request to the other arm (paired design), so the A/A verdict rests
on discordant pairs, which two copies of one model do not produce: its outcome is deterministic
(independent A/A traffic would falsely decide in ~2% of runs: see docs/ab-decisions.md).
"""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml

from digits import AsyncDigitsClient, DigitsClient
from digits.cli import main as digits_cli
from digits.errors import DigitsError
from digits.v1 import digits_pb2 as pb
from tests.modelrepo import two_version_repo
from tests.serverproc import start_server

# model name: (the cell of version 1, the stable one; the cell of version 2, the candidate)
CASES = {"weak": ("lstm", "gru"), "strong": ("gru", "lstm"), "same": ("lstm", "lstm")}


@pytest.fixture(scope="module")
def rollout_repo(tmp_path_factory: pytest.TempPathFactory, model_repo: Path, tuned_lstm: Path) -> Path:
    """gru: the seed recipe, 1 epoch (model_repo); lstm: the tuned recipe, 4 epochs on 4000 digits."""
    cells = {"gru": model_repo / "gru" / "1", "lstm": tuned_lstm / "lstm" / "1"}
    return two_version_repo(cells, CASES, tmp_path_factory.mktemp("rollout-models"))


@pytest.fixture(scope="module")
def server(rollout_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("rollout-config") / "models.yaml"
    config.write_text(yaml.safe_dump({
        "models": {name: {"version_policy": "all", "labels": {"stable": 1}} for name in CASES},
        "experiments": [
            {"name": name, "shadow_percent": 100 if name == "same" else 0,
             "arms": [{"name": "stable", "model": name, "version_label": "stable", "weight": 100},
                      {"name": "candidate", "model": name, "version": 2, "weight": 0}]}
            for name in CASES
        ],
    }))
    proc = start_server(rollout_repo, "--model-config", str(config), "--poll-seconds", "0")
    proc.config = config
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"], data["y_test"].astype(int)


def rollout(server, digits, name: str, *flags: str, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run `digits ab rollout NAME` while labelled traffic flows through the experiment; (exit code, output)."""
    images, labels = digits
    done = threading.Event()
    result: list[int] = []

    def controller() -> None:
        try:
            result.append(digits_cli(["--target", server.target, "--timeout", "30", "ab", "rollout", name,
                                      "--steps", "20,50", "--step-labelled", "60", "--interval", "0.5",
                                      "--max-seconds", "240", *flags]))
        finally:
            done.set()

    async def traffic() -> None:
        async with AsyncDigitsClient(server.target, timeout=30) as client:
            i = 0
            while not done.is_set():
                batch = [client.classify(images[(i + k) % len(images)], experiment=name,
                                         true_label=int(labels[(i + k) % len(labels)])) for k in range(8)]
                await asyncio.gather(*batch)
                i += 8
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=controller)
    thread.start()
    asyncio.run(traffic())
    thread.join()
    out = capsys.readouterr().out
    print(out)  # shown with pytest -rA: every step and decision
    return result[0], out


def decisions_counted(server, name: str) -> dict[str, float]:
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    counted = {}
    for line in text.splitlines():
        if line.startswith("digits_rollout_decisions_total{") and f'experiment="{name}"' in line:
            decision = line.split('decision="')[1].split('"')[0]
            if float(line.rsplit(" ", 1)[1]) > 0:  # every decision's series exists from creation, at 0
                counted[decision] = float(line.rsplit(" ", 1)[1])
    return counted


def test_models_are_clearly_separated(server, digits) -> None:
    images, labels = digits
    with DigitsClient(server.target, timeout=30) as client:
        gru = np.mean([client.classify(x, model="weak", version=2).digit == y for x, y in zip(images[:300], labels)])
        lstm = np.mean([client.classify(x, model="weak", version=1).digit == y for x, y in zip(images[:300], labels)])
    print(f"accuracy on 300 test digits: tuned LSTM {lstm:.3f}, seed GRU {gru:.3f}")
    assert lstm - gru > 0.1, (lstm, gru)


def test_weak_candidate_is_rolled_back(server, digits, capsys) -> None:
    code, out = rollout(server, digits, "weak", capsys=capsys)
    assert code == 3, out
    assert "weak: rollback candidate (weight 0%): worse: always-valid p = " in out, out
    with DigitsClient(server.target, timeout=30) as client:
        report = client.experiment_report("weak")
        (models,) = [m for m in client.list_models() if m.name == "weak"]
    assert [d.decision for d in report.decisions][0] == "start" and report.decisions[-1].decision == "rollback"
    assert report.experiment.paused and [a.weight for a in report.experiment.arms] == [100, 0]
    (pair,) = report.pairs
    assert pair.verdict.startswith("stable beats candidate") and pair.sequence_low > 0
    assert {g.status for g in report.guardrails} != {"breached"}  # rolled back for accuracy, not a guardrail
    assert decisions_counted(server, "weak")["rollback"] == 1
    assert list(next(v for v in models.versions if v.version == 1).labels) == ["stable"]  # the label stays
    text = capsys.readouterr().out if digits_cli(["--target", server.target, "ab", "report", "weak"]) == 0 else ""
    assert "rollout:" in text and "rollback" in text and "always-valid (valid at every look" in text


def test_strong_candidate_is_promoted_and_the_stable_label_moves(server, digits, capsys) -> None:
    code, out = rollout(server, digits, "strong", capsys=capsys)
    assert code == 0, out
    assert "strong: promote candidate (weight 100%): better: always-valid p = " in out, out
    with DigitsClient(server.target, timeout=30) as client:
        (models,) = [m for m in client.list_models() if m.name == "strong"]
        report = client.experiment_report("strong")
        served = client.classify(digits[0][0], experiment="strong")
    assert list(next(v for v in models.versions if v.version == 2).labels) == ["stable"]
    assert yaml.safe_load(server.config.read_text())["models"]["strong"]["labels"] == {"stable": 2}
    assert report.decisions[-1].decision == "promote" and report.experiment.paused
    assert (served.arm, served.version) == ("stable", 2)  # everything goes to the stable label, now version 2
    assert decisions_counted(server, "strong")["promote"] == 1


def test_a_a_rollout_ends_with_no_difference_at_its_horizon(server, digits, capsys) -> None:
    code, out = rollout(server, digits, "same", "--horizon", "400", capsys=capsys)
    assert code == 4, out
    assert "same: no-difference candidate (weight 0%): no difference within" in out, out
    with DigitsClient(server.target, timeout=30) as client:
        report = client.experiment_report("same")
    assert [d.decision for d in report.decisions] == ["start", "step", "no-difference"]
    assert report.pairs[0].sequence_low < 0 < report.pairs[0].sequence_high
    counted = decisions_counted(server, "same")
    assert counted == {"start": 1, "step": 1, "no-difference": 1}
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    series = 'digits_experiment_accuracy_difference_bound{arm_a="stable",arm_b="candidate",bound="low",experiment="same"}'
    assert series in text


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda c: c.set_version_label("weak", "stable", 9), "NOT_FOUND", "version"),
        (lambda c: c.set_version_label("nope", "stable", 1), "NOT_FOUND", "nope"),
        (lambda c: c.set_version_label("weak", "", 1), "INVALID_ARGUMENT", "label"),
        (lambda c: c.record_rollout_decision(pb.RolloutDecision(experiment="nope", candidate_arm="x", decision="step")),
         "NOT_FOUND", "experiment: no experiment 'nope'"),
        (lambda c: c.record_rollout_decision(pb.RolloutDecision(experiment="weak", candidate_arm="x", decision="step")),
         "NOT_FOUND", "has no arm 'x'"),
        (lambda c: c.record_rollout_decision(pb.RolloutDecision(experiment="weak", candidate_arm="candidate",
                                                                decision="win")),
         "INVALID_ARGUMENT", "decision: must be one of"),
        (lambda c: c.experiment_report("weak", verdict_basis="vibes"), "INVALID_ARGUMENT", "verdict_basis"),
    ],
)
def test_bad_rollout_calls_get_clear_status_codes(server, call, code: str, message: str) -> None:
    with DigitsClient(server.target, timeout=30) as client, pytest.raises(DigitsError) as caught:
        call(client)
    assert caught.value.code.name == code and message in caught.value.details, caught.value.details


def test_dashboard_draws_the_decisions(server) -> None:
    """The A/B dashboard's decision row and markers query series this server exports from the
    experiment's creation (the rest of the dashboard is checked by test_ab_end_to_end.py)."""
    import json
    import re

    from tests.serverproc import REPO

    dashboard = json.loads((REPO / "server/monitoring/grafana/dashboards/ab.json").read_text())
    (markers,) = [a for a in dashboard["annotations"]["list"] if a.get("name") == "Rollout decisions"]
    exprs = [markers["expr"]] + [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    exported = set(re.findall(r"^(digits_\w+)[{ ]", text, re.M))
    used = {name for expr in exprs for name in re.findall(r"\bdigits_\w+", expr)}
    decision_row = {"digits_rollout_decisions_total", "digits_experiment_accuracy_difference_bound",
                    "digits_experiment_always_valid_p_value", "digits_experiment_guardrail_breached"}
    assert decision_row <= used and decision_row <= exported, decision_row - exported  # even before any traffic
    assert "digits_rollout_decisions_total" in markers["expr"] and 'experiment=~"$experiment"' in markers["expr"]
