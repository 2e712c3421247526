"""A/B experiments end to end: a real server process with two real cells of clearly different
accuracy (the seed-recipe GRU of `model_repo`, 1 epoch, against an LSTM trained here with the
tuned recipe) and a copy of the LSTM; experiments from the config file and the admin RPCs;
`digits ab run` must find the better cell and must not find a difference between two copies."""

from __future__ import annotations

import asyncio
import shutil
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits import AsyncDigitsClient, DigitsClient
from digits.cli import main as digits_cli
from digits.errors import DigitsError
from digits.v1 import digits_pb2 as pb
from tests.serverproc import start_server

CONFIG = """
experiments:
  - name: cells
    shadow_percent: 20
    arms:
      - {model: gru, weight: 50}
      - {model: lstm, weight: 50}
"""


@pytest.fixture(scope="module")
def ab_repo(tmp_path_factory: pytest.TempPathFactory, model_repo: Path, tuned_lstm: Path) -> Path:
    """gru: seed recipe, 1 epoch (weak); lstm: tuned recipe, 4 epochs on 4000 digits; lstm-copy."""
    repo = tmp_path_factory.mktemp("ab-models")
    shutil.copytree(model_repo / "gru", repo / "gru")
    shutil.copytree(tuned_lstm / "lstm", repo / "lstm")
    shutil.copytree(repo / "lstm", repo / "lstm-copy")
    return repo


@pytest.fixture(scope="module")
def server(ab_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    config = tmp_path_factory.mktemp("ab-config") / "models.yaml"
    config.write_text(CONFIG)
    proc = start_server(ab_repo, "--model-config", str(config), "--poll-seconds", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"], data["y_test"].astype(int)


def ab(server, *args: str, capsys: pytest.CaptureFixture) -> str:
    assert digits_cli(["--target", server.target, "--timeout", "30", "ab", *args]) == 0
    return capsys.readouterr().out


def test_config_file_experiment_routes_sticky_by_key(server, digits) -> None:
    images, _ = digits
    with DigitsClient(server.target, timeout=30) as client:
        (cells,) = [e for e in client.list_experiments() if e.name == "cells"]
        assert [(a.name, a.model.name, a.weight) for a in cells.arms] == [("gru", "gru", 50), ("lstm", "lstm", 50)]
        first = {key: client.classify(images[0], experiment="cells", routing_key=key) for key in map(str, range(20))}
        assert {r.arm for r in first.values()} == {"gru", "lstm"}
        for key, result in first.items():
            assert (result.experiment, result.model) == ("cells", result.arm)
            again = client.classify(images[1], experiment="cells", routing_key=key)
            assert again.arm == result.arm


def test_ab_run_finds_the_better_cell(server, digits, tiny_npz: Path, tmp_path: Path, capsys) -> None:
    out = ab(server, "run", "--data", str(tiny_npz), "--experiment", "cells", "--rate", "300", "--count", "600",
             "--keys", "50", "--out-dir", str(tmp_path), "--no-progress", capsys=capsys)
    assert "lstm beats gru by" in out, out
    with DigitsClient(server.target, timeout=30) as client:
        report = client.experiment_report("cells")
    gru, lstm = report.arms
    assert gru.labelled > 200 and lstm.labelled > 200
    assert lstm.accuracy_low > gru.accuracy_high  # the intervals do not even overlap
    assert gru.requests + lstm.requests >= 600 and gru.errors == lstm.errors == 0
    assert 0 < lstm.latency_p50_seconds <= lstm.latency_p99_seconds
    (pair,) = report.pairs
    assert pair.fixed_horizon_verdict.startswith("lstm beats gru by") and pair.z_test_p_value < 0.001
    assert pair.verdict_basis == "always-valid" and pair.verdict.startswith("lstm beats gru: a - b in [-")
    assert pair.always_valid_p_holm < 0.001 and pair.sequence_high < 0
    assert pair.accuracy_difference < 0 and pair.difference_high < 0
    paired = pair.both_right + pair.only_a_right + pair.only_b_right + pair.both_wrong
    assert paired > 50 and pair.only_b_right > pair.only_a_right  # the 20% shadowed, labelled requests
    assert pair.shadow_agree + pair.shadow_disagree >= paired  # agreement counts unlabelled ones too
    markdown = (tmp_path / "ab-report.md").read_text()
    assert "lstm beats gru by" in markdown and "ab-report.png" in markdown
    assert (tmp_path / "ab-report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_two_copies_of_one_model_are_not_declared_different(server, tiny_npz: Path, tmp_path: Path, capsys) -> None:
    ab(server, "create", "same", "--arm", "lstm=1", "--arm", "lstm-copy=1", "--shadow", "100", capsys=capsys)
    out = ab(server, "run", "--data", str(tiny_npz), "--experiment", "same", "--rate", "300", "--count", "400",
             "--keys", "50", "--out-dir", str(tmp_path), "--no-progress", capsys=capsys)
    assert "no significant difference yet" in out and "McNemar" in out, out
    with DigitsClient(server.target, timeout=30) as client:
        (pair,) = client.experiment_report("same").pairs
    # Every request is paired, so McNemar decides; the independent-traffic z-test may dip below
    # 0.05 by chance (it did in a 600-request run: p = 0.038), which is why heavy shadowing is the better design.
    fixed = pair.fixed_horizon_verdict
    assert fixed.startswith("no significant difference yet") and "McNemar" in fixed
    assert pair.verdict.startswith("no difference shown yet") and "paired" in pair.always_valid_test
    assert pair.mcnemar_p_value > 0.05 and pair.more_needed_per_arm > 0
    assert pair.only_a_right + pair.only_b_right <= 2
    # Identical weights: the shadow copy agrees with the primary (up to float ties between batch shapes).
    assert pair.shadow_disagree <= 2 < pair.shadow_agree


def test_report_cli_prints_the_tables(server, capsys) -> None:
    out = ab(server, "report", "cells", capsys=capsys)
    assert "experiment cells (running; weights gru=50, lstm=50; shadow 20%)" in out
    assert "latency: server histogram digits_request_duration_seconds" in out


@pytest.mark.asyncio
async def test_changes_under_load_fail_no_request(server, digits) -> None:
    images, labels = digits
    async with AsyncDigitsClient(server.target, timeout=30) as client:
        await client.create_experiment("live", [("gru", 1), ("lstm", 1)])

        async def traffic(i: int) -> str:
            await asyncio.sleep(i / 150)
            result = await client.classify(images[i % len(images)], experiment="live", routing_key=f"u{i % 40}",
                                           true_label=int(labels[i % len(labels)]))
            return result.arm

        async def changes() -> None:
            for weights, paused, shadow in [((9, 1), False, 50), ((1, 9), True, 0), ((1, 1), False, 100), ((0, 1), False, 0)]:
                await asyncio.sleep(0.3)
                update = pb.Experiment(name="live", shadow_percent=shadow, paused=paused)
                update.arms.add(name="gru", weight=weights[0])
                update.arms.add(name="lstm", weight=weights[1])
                await client.update_experiment(update)
                await client.create_experiment("other", [("gru", 1), ("lstm", 1)])
                await client.delete_experiment("other")

        arms, _ = await asyncio.gather(asyncio.gather(*(traffic(i) for i in range(300))), changes())
        assert set(arms) == {"gru", "lstm"}
        # The last update gave gru weight 0: nothing reaches it any more.
        after = await asyncio.gather(*(client.classify(images[0], experiment="live", routing_key=f"u{k}") for k in range(40)))
        assert {r.arm for r in after} == {"lstm"}
        report = await client.experiment_report("live")
        assert sum(a.requests for a in report.arms) == 340 and sum(a.errors for a in report.arms) == 0
        await client.delete_experiment("live")


@pytest.mark.parametrize(
    ("call", "code", "message"),
    [
        (lambda c: c.create_experiment("cells", [("gru", 1), ("lstm", 1)]), grpc.StatusCode.ALREADY_EXISTS,
         "experiment 'cells' exists"),
        (lambda c: c.create_experiment("x", [("gru", 1), ("nope", 1)]), grpc.StatusCode.INVALID_ARGUMENT,
         "arms[1].model: model_spec.name: no model 'nope'"),
        (lambda c: c.create_experiment("x", [("gru", 1)]), grpc.StatusCode.INVALID_ARGUMENT, "at least two arms"),
        (lambda c: c.create_experiment("x", [("gru", -1), ("lstm", 1)]), grpc.StatusCode.INVALID_ARGUMENT,
         "arms[0].weight"),
        (lambda c: c.experiment_report("nope"), grpc.StatusCode.NOT_FOUND, "no experiment 'nope'"),
        (lambda c: c.delete_experiment("nope"), grpc.StatusCode.NOT_FOUND, "no experiment 'nope'"),
        (lambda c: c.classify(np.zeros((28, 28), np.uint8), experiment="nope"), grpc.StatusCode.NOT_FOUND,
         "model_spec.experiment: no experiment 'nope'"),
        (lambda c: c.update_experiment(pb.Experiment(name="cells", arms=[pb.Arm(name="rnn", weight=1)])),
         grpc.StatusCode.INVALID_ARGUMENT, "has no arm 'rnn'"),
    ],
)
def test_bad_experiment_calls_get_clear_status_codes(server, call, code, message: str) -> None:
    with DigitsClient(server.target, timeout=30) as client, pytest.raises(DigitsError) as caught:
        call(client)
    assert caught.value.code == code and message in caught.value.details


def test_metrics_carry_arms_shadow_agreement_and_paired_outcomes(server) -> None:
    with DigitsClient(server.target, timeout=30) as client:
        client.classify_batch(np.zeros((4, 28, 28), np.uint8), experiment="cells", routing_key="m",
                              true_labels=[0, 1, 2, 3])
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    assert 'digits_requests_total{arm="' in text and 'experiment="cells"' in text
    for name in ("digits_shadow_agreement_total", "digits_paired_outcomes_total",
                 "digits_experiment_labelled_predictions_total", "digits_experiment_correct_predictions_total"):
        assert f"{name}{{" in text, name


def test_ab_dashboard_queries_only_metrics_the_server_exports(server) -> None:
    import json
    import re

    from tests.serverproc import REPO

    dashboard = json.loads((REPO / "server/monitoring/grafana/dashboards/ab.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"]]
    text = urllib.request.urlopen(server.metrics_url, timeout=10).read().decode()
    exported = set(re.findall(r"^(digits_\w+)[{ ]", text, re.M))
    used = {name for expr in exprs for name in re.findall(r"\bdigits_\w+", expr)}
    assert {"digits_experiment_correct_predictions_total", "digits_shadow_agreement_total",
            "digits_paired_outcomes_total", "digits_request_duration_seconds_bucket"} <= used
    assert used <= exported, used - exported
    assert all('experiment=~"$experiment"' in expr for expr in exprs[:-1])


def test_feedback_counts_for_the_arm_that_served(server, digits) -> None:
    images, labels = digits
    with DigitsClient(server.target, timeout=30) as client:
        before = {a.arm: a.labelled for a in client.experiment_report("cells").arms}
        result = client.classify(images[3], experiment="cells", routing_key="feedback-user")
        client.feedback(result.request_id, int(labels[3]))
        after = {a.arm: a.labelled for a in client.experiment_report("cells").arms}
    assert after[result.arm] == before[result.arm] + 1
    assert sum(after.values()) == sum(before.values()) + 1
