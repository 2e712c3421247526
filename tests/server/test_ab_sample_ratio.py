"""Sample-ratio mismatch on a real server (issue 21 §5): two 50/50 experiments get the same unlabelled
traffic; their true labels come back by Feedback, except that half of one arm's are dropped in
experiment `lossy` (as a broken labelling pipeline or a balancer losing one arm's requests would).
The server's report shows the mismatch as a guardrail of `lossy` only, and the rollout rule that
would promote the candidate of `intact` by its non-inferiority margin holds `lossy` instead."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from digits import DigitsClient
from digits.cli import ab_output
from digits.experiments.rollout import Policy, decide
from tests.serverproc import start_server


@pytest.fixture(scope="module")
def server(model_repo: Path):
    proc = start_server(model_repo)
    yield proc
    assert proc.stop() == 0, proc.log()


def run(client: DigitsClient, name: str, images: np.ndarray, labels: np.ndarray, drop_lstm: bool) -> None:
    """Unlabelled Classify calls, then Feedback with the true digit (half of lstm's dropped if asked)."""
    client.create_experiment(name, [("gru", "gru", 50), ("lstm", "lstm", 50)])
    answers = [(client.classify(image, experiment=name), int(label)) for image, label in zip(images, labels)]
    lstm_seen = 0
    for answer, label in answers:
        if answer.arm == "lstm":
            lstm_seen += 1
            if drop_lstm and lstm_seen % 2:
                continue
        client.feedback(answer.request_id, label)


def test_a_dropped_half_of_one_arm_is_a_sample_ratio_breach_that_holds_the_rollout(server, tiny_npz: Path) -> None:
    with np.load(tiny_npz) as data:
        images, labels = data["x_test"][:400], data["y_test"][:400]
    with DigitsClient(server.target, timeout=30) as client:
        run(client, "intact", images, labels, drop_lstm=False)
        run(client, "lossy", images, labels, drop_lstm=True)
        intact, lossy = client.experiment_report("intact"), client.experiment_report("lossy")
    (srm_intact,) = [g for g in intact.guardrails if g.metric == "sample-ratio"]
    (srm_lossy,) = [g for g in lossy.guardrails if g.metric == "sample-ratio"]
    assert srm_intact.status == "undecided", srm_intact
    assert srm_lossy.status == "breached" and srm_lossy.arm == "lstm", srm_lossy
    assert srm_lossy.baseline_value == pytest.approx(0.5) and srm_lossy.value < 0.4
    labelled = {a.arm: a.labelled for a in lossy.arms}
    assert srm_lossy.value == pytest.approx(labelled["lstm"] / sum(labelled.values()))
    assert lossy.pairs[0].verdict == "guardrail breached: sample-ratio (lstm vs gru)"
    (row,) = [r for r in ab_output.guardrail_rows(lossy) if r[2] == "sample-ratio"]
    assert row[:3] == ("lstm", "gru", "sample-ratio") and row[4] == "50.0%" and row[-1] == "breached"

    policy = Policy(steps=(50,), margin=0.5)  # so wide that any labelled comparison is "not worse"
    assert decide(intact, "gru", "lstm", policy, 0, 0).decision == "promote"
    held = decide(lossy, "gru", "lstm", policy, 0, 0)
    assert (held.decision, held.weight) == ("hold", 50)
    assert held.reason.startswith("sample-ratio mismatch: lstm has ")
