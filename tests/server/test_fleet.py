"""Three real replicas that share only a model repository, a ConfigMap-like config directory and a
feedback key behave as one service: feedback at any replica counted once in the fleet, experiments
created through one replica routing on all within one poll, the same arm for a key everywhere,
config hashes that agree, and admin writes refused (FAILED_PRECONDITION) on a read-only config."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import grpc
import numpy as np
import pytest
import yaml

from digits import DigitsClient
from digits.errors import AlreadyExistsError, DigitsError, InvalidInputError
from tests.fleet import ConfigMapDir, fleet_total, scrape, start_replicas, total, wait_for
from tests.serverproc import ServerProcess, start_server
from tests.tools import cannot_run_here

POLL_SECONDS = 1.0
KEY = "a-fleet-key-shared-by-every-replica-0123"
CONFIG = """
models:
  lstm: {version_policy: {latest: 1}}
experiments:
  - name: cells
    arms:
      - {model: gru, weight: 50}
      - {model: lstm, weight: 50}
"""


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory) -> ConfigMapDir:
    return ConfigMapDir(tmp_path_factory.mktemp("fleet") / "config", CONFIG)


@pytest.fixture(scope="module")
def fleet(model_repo: Path, config_dir: ConfigMapDir, tmp_path_factory: pytest.TempPathFactory):
    key = tmp_path_factory.mktemp("fleet-key") / "feedback.key"
    key.write_text(KEY)
    key.chmod(0o600)
    replicas = start_replicas(
        model_repo, 3, "--model-config", str(config_dir.path), "--poll-seconds", str(POLL_SECONDS),
        "--feedback-key-file", str(key),
    )
    yield replicas
    for replica in replicas:
        assert replica.stop() == 0, replica.log()


@pytest.fixture(scope="module")
def digits(tiny_npz: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(tiny_npz) as data:
        return data["x_test"][:40], data["y_test"][:40].astype(int)


def experiments_at(replica: ServerProcess) -> dict[str, dict[str, float]]:
    """{experiment: {arm: weight}} as one replica lists them."""
    with DigitsClient(replica.target, timeout=10) as client:
        return {e.name: {a.name: a.weight for a in e.arms} for e in client.list_experiments()}


def config_hashes(fleet: list[ServerProcess]) -> list[str]:
    return [dict(next(iter(scrape(r)["digits_config_info"])))["hash"] for r in fleet]


def test_feedback_is_accepted_at_any_replica_and_counted_once_in_the_fleet(fleet, digits) -> None:
    images, labels = digits
    served, other, third = fleet
    before = {
        "live": fleet_total(fleet, "digits_labelled_predictions_total", source="feedback"),
        "arm": fleet_total(fleet, "digits_experiment_labelled_predictions_total", experiment="cells"),
        "at_other": total(other, "digits_labelled_predictions_total", source="feedback"),
        "correct": fleet_total(fleet, "digits_correct_predictions_total", source="feedback"),
    }
    with DigitsClient(served.target, timeout=30) as client:
        batch = client.classify_batch(images[:6], experiment="cells", routing_key="user-7")
    right = 0
    for i, replica in enumerate((other, third, other, third, other, third)):
        with DigitsClient(replica.target, timeout=30) as client:
            answer = client.feedback(batch.request_id, int(labels[i]), index=i)
        assert (answer.model, answer.experiment, answer.arm) == (batch.model, "cells", batch.arm)
        assert answer.predicted == batch.digits[i]
        right += answer.correct
    with DigitsClient(other.target, timeout=30) as client:
        with pytest.raises(AlreadyExistsError, match="index 0 has received feedback already"):
            client.feedback(batch.request_id, int(labels[0]), index=0)
        forged = batch.request_id[:-6] + ("AAAAAA" if not batch.request_id.endswith("AAAAAA") else "BBBBBB")
        with pytest.raises(InvalidInputError, match="request_id: signature does not verify"):
            client.feedback(forged, 1)
    after_live = fleet_total(fleet, "digits_labelled_predictions_total", source="feedback")
    assert after_live - before["live"] == 6  # counted once in the fleet, by the replicas that received it
    assert fleet_total(fleet, "digits_experiment_labelled_predictions_total", experiment="cells") - before["arm"] == 6
    assert total(other, "digits_labelled_predictions_total", source="feedback") - before["at_other"] == 3
    correct = fleet_total(fleet, "digits_correct_predictions_total", source="feedback") - before["correct"]
    assert correct == right  # this test's correct answers, not the running total since start
    assert total(other, "digits_feedback_rejected_total", reason="duplicate") >= 1
    assert total(other, "digits_feedback_rejected_total", reason="forged") >= 1


def test_an_experiment_created_through_one_replica_routes_on_every_replica_within_a_poll(
    fleet, digits, config_dir, capsys
) -> None:
    images, _ = digits
    with DigitsClient(fleet[0].target, timeout=30) as client:
        client.create_experiment("fleet-new", [("gru", 1), ("lstm", 3)])
    waited = [wait_for(lambda r=r: "fleet-new" in experiments_at(r), 30, f"fleet-new on {r.target}") for r in fleet]
    for replica in fleet:
        with DigitsClient(replica.target, timeout=30) as client:
            result = client.classify(images[0], experiment="fleet-new", routing_key="someone")
        assert result.experiment == "fleet-new" and result.arm in ("gru", "lstm")
    with DigitsClient(fleet[1].target, timeout=30) as client:
        client.update_experiment("fleet-new", [("gru", 5), ("lstm", 1)])
    wait_for(lambda: all(experiments_at(r).get("fleet-new") == {"gru": 5.0, "lstm": 1.0} for r in fleet), 30,
             "the update on every replica")
    wait_for(lambda: len(set(config_hashes(fleet))) == 1, 30, "one config hash")
    with DigitsClient(fleet[2].target, timeout=30) as client:
        client.delete_experiment("fleet-new")
    wait_for(lambda: all("fleet-new" not in experiments_at(r) for r in fleet), 30, "the deletion everywhere")
    assert "fleet-new" not in config_dir.read() and "cells" in config_dir.read()
    with capsys.disabled():
        print(f"\n[fleet] experiment seen by the replicas after {', '.join(f'{w:.2f}s' for w in waited)} "
              f"(poll {POLL_SECONDS:g}s)")


def test_the_same_routing_key_gets_the_same_arm_on_every_replica(fleet, digits) -> None:
    images, _ = digits
    arms: list[list[str]] = []
    for replica in fleet:
        with DigitsClient(replica.target, timeout=30) as client:
            arms.append([client.classify(images[1], experiment="cells", routing_key=f"user-{k}").arm
                         for k in range(40)])
    assert arms[0] == arms[1] == arms[2]
    assert set(arms[0]) == {"gru", "lstm"}


def test_a_configmap_update_applies_on_every_replica_and_the_hashes_agree(fleet, config_dir) -> None:
    config = yaml.safe_load(config_dir.read())
    config["experiments"].append({"name": "from-file", "arms": [{"model": "rnn", "weight": 1},
                                                                 {"model": "gru", "weight": 1}]})
    config["experiments"][0]["arms"][0]["weight"] = 70
    config_dir.swap(yaml.safe_dump(config))
    wait_for(lambda: all(experiments_at(r).get("from-file") == {"rnn": 1.0, "gru": 1.0} for r in fleet), 30,
             "the swapped ConfigMap on every replica")
    assert all(experiments_at(r)["cells"]["gru"] == 70 for r in fleet)
    wait_for(lambda: len(set(config_hashes(fleet))) == 1, 30, "one config hash")
    config["experiments"] = [e for e in config["experiments"] if e["name"] != "from-file"]
    config_dir.swap(yaml.safe_dump(config))
    wait_for(lambda: all("from-file" not in experiments_at(r) for r in fleet), 30, "removal from the ConfigMap")
    config_dir.swap("experiments: [{name: broken, arms: []}]\n")  # invalid: everyone keeps the previous config
    hashes = config_hashes(fleet)
    with DigitsClient(fleet[0].target, timeout=30) as client:
        with pytest.raises(DigitsError, match="FAILED_PRECONDITION|at least two arms"):
            client.reload_models()
    assert config_hashes(fleet) == hashes and all("cells" in experiments_at(r) for r in fleet)
    config_dir.swap(yaml.safe_dump(config))


def read_only_mount(folder: Path) -> list[str]:
    """A command prefix that runs its command with `folder` mounted read-only (a private mount
    namespace: what a ConfigMap volume is). Skips when this machine cannot make mount namespaces,
    except in CI, where it fails (tests/tools.py `cannot_run_here`)."""
    unshare = shutil.which("unshare")
    probe = subprocess.run(
        [unshare or "unshare", "-m", "sh", "-c", f"mount --bind {folder} {folder} && "
         f"mount -o remount,bind,ro {folder} && ! touch {folder}/.probe"], capture_output=True,
    ) if unshare else None
    if probe is None or probe.returncode != 0:
        cannot_run_here("no mount namespaces here (unshare -m) to make a read-only config volume")
    script = f'mount --bind {folder} {folder} && mount -o remount,bind,ro {folder} && exec "$@"'
    return [unshare, "-m", "sh", "-c", script, "sh"]


def test_admin_changes_on_a_read_only_config_are_failed_precondition_naming_the_file(
    model_repo: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "configmap"
    folder.mkdir()
    (folder / "models.yaml").write_text(CONFIG)
    prefix = read_only_mount(folder)
    server = start_server(model_repo, "--model-config", str(folder / "models.yaml"), "--poll-seconds", "0",
                          command_prefix=prefix)
    try:
        with DigitsClient(server.target, timeout=30) as client:
            for change in (lambda: client.create_experiment("x", [("gru", 1), ("lstm", 1)]),
                           lambda: client.update_experiment("cells", [("gru", 9)]),
                           lambda: client.delete_experiment("cells")):
                with pytest.raises(DigitsError) as refused:
                    change()
                assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
                assert f"{folder / 'models.yaml'}: cannot write the model config (Read-only file system)" in str(
                    refused.value)
            assert [e.name for e in client.list_experiments()] == ["cells"]  # nothing changed
            assert experiments_at(server)["cells"] == {"gru": 50.0, "lstm": 50.0}
    finally:
        assert server.stop() == 0, server.log()


def classify_counts(fleet: list[ServerProcess], method: str) -> list[float]:
    """Each replica's finished `method` calls so far, from its own /metrics."""
    return [total(r, "digits_requests_total", method=method) for r in fleet]


def assert_balanced(before: list[float], after: list[float], sent: int, label: str, capsys) -> None:
    shares = [(a - b) / sent for a, b in zip(after, before)]
    with capsys.disabled():
        print(f"\n[balance] {label}: {sent} requests, shares " + ", ".join(f"{s:.1%}" for s in shares))
    assert sum(after) - sum(before) == sent
    assert all(abs(share - 1 / 3) <= 0.10 for share in shares), shares


def test_a_multi_address_target_spreads_requests_round_robin(fleet, digits, capsys) -> None:
    images, _ = digits
    addresses = ",".join(f"127.0.0.1:{r.port}" for r in fleet)
    before = classify_counts(fleet, "Classify")
    with DigitsClient(f"ipv4:{addresses}", timeout=30) as client:
        for i in range(3000):
            client.classify(images[i % len(images)], model="lstm")
    assert_balanced(before, classify_counts(fleet, "Classify"), 3000, "DigitsClient ipv4:A,B,C", capsys)

    before = classify_counts(fleet, "Classify")
    with DigitsClient(f"ipv4:{addresses}", timeout=30, lb_policy="pick_first") as client:
        for i in range(300):
            client.classify(images[i % len(images)], model="lstm")
    grown = sorted(a - b for a, b in zip(classify_counts(fleet, "Classify"), before))
    assert grown == [0, 0, 300]  # pick_first: one connection, one replica


def test_the_async_client_balances_a_comma_list_of_host_names(fleet, digits, capsys) -> None:
    import asyncio

    from digits import AsyncDigitsClient

    images, _ = digits
    target = ",".join(f"localhost:{r.port}" for r in fleet)

    async def send() -> None:
        async with AsyncDigitsClient(target, timeout=30) as client:
            for _ in range(0, 3000, 100):
                await asyncio.gather(*(client.classify_batch(images[:1], model="lstm") for _ in range(100)))

    before = classify_counts(fleet, "ClassifyBatch")
    asyncio.run(send())
    assert_balanced(before, classify_counts(fleet, "ClassifyBatch"), 3000, "AsyncDigitsClient host:p1,host:p2,host:p3",
                    capsys)


def test_digits_bench_and_the_cli_balance_over_an_address_list(fleet, capsys) -> None:
    from digits.cli import main as digits_cli

    addresses = ",".join(f"127.0.0.1:{r.port}" for r in fleet)
    before = classify_counts(fleet, "Classify")
    code = digits_cli(["--target", f"ipv4:{addresses}", "bench", "--count", "3000", "--concurrency", "4",
                       "--warmup", "0", "--model", "lstm", "--json", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)
    sent = classify_counts(fleet, "Classify")
    assert sum(sent) - sum(before) >= 3000  # the measured 3,000 and the warm-up's few
    assert_balanced(before, sent, int(sum(sent) - sum(before)), "digits bench ipv4:A,B,C", capsys)
    assert digits_cli(["--target", f"dns:///localhost:{fleet[0].port}", "models"]) == 0
    assert digits_cli(["--target", f"127.0.0.1:{fleet[0].port}", "--lb-policy", "round_robin", "models"]) == 0
    assert digits_cli(["--target", "no-such-host.invalid:1,no-such-host.invalid:2", "models"]) == 2
    assert "cannot resolve" in capsys.readouterr().err


def test_a_machine_without_mount_namespaces_fails_in_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read-only-config test cannot silently skip in CI (it did when `unshare -m` was missing)."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="unshare -m"):
        read_only_mount(tmp_path)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="unshare -m"):
        read_only_mount(tmp_path)
