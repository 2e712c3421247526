"""`digits ab rollout` on a fleet (issue 21 §1): three real replicas sharing one config file behind a
real Envoy, a real Prometheus scraping them every second, and the controller's looks at the fleet's
exact totals (FleetLooks, `--prometheus`). Labelled traffic goes through Envoy in rounds; before each
look Prometheus has caught up, so the counts behind every decision must equal the fleet's totals read
from the replicas' own /metrics. A weak candidate is rolled back, a strong one promoted (the `stable`
label moves on every replica), an A/A rollout ends "no difference". Without --prometheus the
controller refuses: Envoy spreads its reports over replicas with different server ids.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

from digits import AsyncDigitsClient, DigitsClient
from digits.cli import main as digits_cli
from digits.experiments.fleet_rollout import FleetLooks
from digits.experiments.rollout import FINAL, FleetError, Policy, Rollout
from digits.v1 import digits_pb2 as pb
from tests.envoyproc import Fleet, start_envoy
from tests.fleet import fleet_total, wait_for
from tests.modelrepo import two_version_repo
from tests.promproc import start_fleet_prometheus
from tests.serverproc import start_server

CASES = {"weak": ("lstm", "gru"), "strong": ("gru", "lstm"), "same": ("lstm", "lstm")}
POLICY = Policy(steps=(20, 50), step_labelled=60, horizon=400)
LABELLED = "digits_experiment_labelled_predictions_total"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, model_repo: Path, tuned_lstm: Path):
    cells = {"gru": model_repo / "gru" / "1", "lstm": tuned_lstm / "lstm" / "1"}
    repo = two_version_repo(cells, CASES, tmp_path_factory.mktemp("fleet-rollout-models"))
    config = tmp_path_factory.mktemp("fleet-rollout-config") / "models.yaml"
    config.write_text(yaml.safe_dump({
        "models": {name: {"version_policy": "all", "labels": {"stable": 1}} for name in CASES},
        "experiments": [{"name": "handwritten", "arms": [{"name": "a", "model": "weak", "version": 1, "weight": 50},
                                                         {"name": "b", "model": "weak", "version": 2,
                                                          "weight": 50}]}],
    }))
    flags = ("--model-config", str(config), "--poll-seconds", "1")
    # one after the other, with time to load six SavedModels each on a busy machine
    replicas = [start_server(repo, *flags, timeout=600) for _ in range(3)]
    running = Fleet(repo, flags, replicas)
    running.envoy = start_envoy([r.target for r in replicas], health_check_interval=2.0)  # the shipped interval
    running.wait_healthy(timeout=300)
    running.config = config
    running.prometheus = start_fleet_prometheus([r.metrics_port for r in running.replicas],
                                                tmp_path_factory.mktemp("fleet-rollout-prometheus"))
    yield running
    running.prometheus.stop()
    running.stop()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"], data["y_test"].astype(int)


def create(fleet, name: str, model: str = "") -> None:
    """The experiment, created through Envoy (so its creation time is in the shared file), on every replica."""
    model = model or name
    experiment = pb.Experiment(name=name, shadow_percent=100 if name == "same" else 0)
    experiment.arms.add(name="stable", model=pb.ModelSpec(name=model, version_label="stable"), weight=100)
    experiment.arms.add(name="candidate", model=pb.ModelSpec(name=model, version=2), weight=0)
    with DigitsClient(fleet.envoy.target, timeout=30) as client:
        client.create_experiment(experiment)
    agree(fleet, name)


def agree(fleet, name: str) -> None:
    """Until every replica runs the experiment with the same weights and pause flag (config polls)."""

    def same() -> bool:
        seen = set()
        for replica in fleet.replicas:
            with DigitsClient(replica.target, timeout=30) as client:
                found = [e for e in client.list_experiments() if e.name == name]
            seen.add(tuple(a.weight for a in found[0].arms) + (found[0].paused,) if found else None)
        return len(seen) == 1 and None not in seen

    wait_for(same, 30, f"every replica runs {name} alike")


async def send_round(target: str, name: str, digits, start: int, count: int) -> Counter:
    images, labels = digits
    async with AsyncDigitsClient(target, timeout=30) as client:
        answers = await asyncio.gather(*[
            client.classify(images[(start + k) % len(images)], experiment=name,
                            true_label=int(labels[(start + k) % len(labels)])) for k in range(count)])
    return Counter(answer.arm for answer in answers)


def fleet_labelled(fleet, name: str) -> dict[str, int]:
    """The fleet's labelled totals by arm, from the replicas' own /metrics."""
    return {arm: int(fleet_total(fleet.replicas, LABELLED, experiment=name, arm=arm)) for arm in ("stable", "candidate")}


def caught_up(fleet, name: str) -> bool:
    """Prometheus' latest samples hold what the replicas counted."""
    found = fleet.prometheus.query(f'sum by (arm) ({LABELLED}{{experiment="{name}"}})')
    scraped = {dict(k)["arm"]: int(v) for k, v in found.items() if v}
    return scraped == {arm: n for arm, n in fleet_labelled(fleet, name).items() if n}


def roll_out(fleet, digits, name: str) -> tuple[str, list[str]]:
    """The controller's looks in rounds of traffic; every decision's counts checked; (final decision, log)."""
    lines: list[str] = []
    with DigitsClient(fleet.envoy.target, timeout=30) as client:
        looks = FleetLooks(client, name, fleet.prometheus.url, settle=0.0)
        rollout = Rollout(client, name, "candidate", POLICY, log=lines.append, looks=looks)
        rollout.begin()
        start = 0
        for _ in range(60):
            agree(fleet, name)
            fleet.wait_healthy()  # a loaded machine can fail Envoy's health checks for a moment
            if start:  # the first look sees no traffic
                asyncio.run(send_round(fleet.envoy.target, name, digits, start, 40))
            start += 40
            wait_for(lambda: caught_up(fleet, name), 60, "Prometheus has the fleet's counts")
            decision = rollout.advance()
            if decision.reason.startswith("look failed"):
                continue
            behind = {arm.arm: arm.labelled for arm in rollout.last_report.arms}
            assert behind == fleet_labelled(fleet, name), (decision, behind)  # the fleet's totals, exactly
            if decision.decision != "hold":  # acted on, and logged with the counts it rests on
                assert lines[-1].endswith(f"labelled stable {behind['stable']}, candidate {behind['candidate']}")
            if decision.decision in FINAL:
                agree(fleet, name)
                return decision.decision, lines
    raise AssertionError(f"{name}: no decision after 60 looks:\n" + "\n".join(lines))


def test_weak_candidate_is_rolled_back_on_the_fleets_counts(fleet, digits) -> None:
    create(fleet, "weak")
    decision, lines = roll_out(fleet, digits, "weak")
    print("\n".join(lines))
    assert decision == "rollback", lines
    assert "worse: always-valid p = " in lines[-1]
    with DigitsClient(fleet.envoy.target, timeout=30) as client:
        (experiment,) = [e for e in client.list_experiments() if e.name == "weak"]
    assert experiment.paused and [a.weight for a in experiment.arms] == [100, 0]


def test_strong_candidate_is_promoted_and_the_label_moves_on_every_replica(fleet, digits) -> None:
    create(fleet, "strong")
    decision, lines = roll_out(fleet, digits, "strong")
    print("\n".join(lines))
    assert decision == "promote", lines
    assert yaml.safe_load(fleet.config.read_text())["models"]["strong"]["labels"] == {"stable": 2}

    def moved() -> bool:
        for replica in fleet.replicas:
            with DigitsClient(replica.target, timeout=30) as client:
                if client.classify(digits[0][0], experiment="strong").version != 2:
                    return False
        return True

    wait_for(moved, 30, "every replica serves version 2 as stable")


def test_a_a_rollout_ends_with_no_difference(fleet, digits) -> None:
    create(fleet, "same")
    decision, lines = roll_out(fleet, digits, "same")
    print("\n".join(lines))
    assert decision == "no-difference", lines
    assert [line.split(": ")[1].split()[0] for line in lines] == ["start", "step", "no-difference"]


def test_a_rollout_without_fleet_data_refuses_a_fleet(fleet, capsys) -> None:
    create(fleet, "refused", model="weak")
    capsys.readouterr()
    code = digits_cli(["--target", fleet.envoy.target, "--timeout", "30", "ab", "rollout", "refused",
                       "--interval", "0.2", "--max-seconds", "20"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "reaches 2 different servers" in err or "reaches 3 different servers" in err, err
    assert "--prometheus URL" in err
    with DigitsClient(fleet.envoy.target, timeout=30) as client:
        (experiment,) = [e for e in client.list_experiments() if e.name == "refused"]
        assert not client.experiment_report("refused").decisions  # refused before any step
    assert [a.weight for a in experiment.arms] == [100, 0]


def test_fleet_looks_refuse_an_experiment_without_a_creation_time(fleet) -> None:
    with DigitsClient(fleet.envoy.target, timeout=30) as client, pytest.raises(FleetError, match="no creation time"):
        FleetLooks(client, "handwritten", fleet.prometheus.url).look()


def test_the_cli_rollout_on_prometheus_refuses_an_experiment_without_a_creation_time(fleet, capsys) -> None:
    capsys.readouterr()
    code = digits_cli(["--target", fleet.envoy.target, "--timeout", "30", "ab", "rollout", "handwritten",
                       "--prometheus", fleet.prometheus.url, "--interval", "0.2", "--max-seconds", "20"])
    err = capsys.readouterr().err
    assert code == 2 and "experiment 'handwritten' has no creation time" in err, err
