"""Label-free monitoring on a real server (docs/monitoring.md): shifted copies of unseen digits,
sent WITHOUT labels, raise the drift alarms; clean traffic raises none and its estimated
accuracy tracks the true one (labels held back by the test). One version per shift (copies of
one trained model), so each detector sees one kind of traffic.

The model is the seed recipe's rnn trained here on the shared digits with a 20% validation split
(~0.88 test accuracy, ~1 minute): the suite's 1-epoch tiny models are right 1 time in 3 or 4,
and a model that weak predicts much the same classes whatever digits it is shown, so label
shift cannot show in its predictions. The reference is the validation split; the traffic is the
test split, which neither training nor the reference saw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from digits import DigitsClient
from digits.cli import main as digits_cli
from digits.monitoring.profile import PROFILE_FILE
from digits.v1 import digits_pb2 as pb
from digits.v1 import digits_pb2_grpc as pb_grpc
from tests.conftest import MNIST_NPZ
from tests.serverproc import start_server
from tests.shifts import SHIFTS, shifted_stream

CELL = "rnn"
PREDICTIONS = 1000
NO_REFERENCE, BAD_REFERENCE = 8, 9
VERSIONS = {name: number for number, name in enumerate(SHIFTS, start=1)}  # clean: 1, inverted: 2, ...
#: The signals each covariate shift must move (at least one of them alarms).
EXPECTED = {
    "inverted": {"background"}, "gaussian_noise": {"background", "ink_intensity"},
    "rotated_20_30": {"box_width", "box_height", "predicted_class", "confidence"},
    "thick_strokes": {"ink_fraction"}, "half_size": {"box_height", "box_width"},
    "three_classes": {"predicted_class"},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The version folder of an rnn trained with the seed recipe, 20% of the training digits held out."""
    from digits_trainer import train

    (result,) = train(cells=[CELL], recipe="seed", data=MNIST_NPZ, out=tmp_path_factory.mktemp("trained"), seed=0,
                      validation_split=0.2, plot=False, quiet=True)
    return result.path


@pytest.fixture(scope="module")
def repo(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1..7 (one per shift), 8 without a reference profile, 9 with a broken one."""
    root = tmp_path_factory.mktemp("monitoring-repo")
    for version in range(1, BAD_REFERENCE + 1):
        shutil.copytree(trained, root / CELL / str(version))
    (root / CELL / str(NO_REFERENCE) / PROFILE_FILE).unlink()
    broken = json.loads((root / CELL / str(BAD_REFERENCE) / PROFILE_FILE).read_text())
    broken["signals"]["confidence"]["counts"] = [1, 2]
    (root / CELL / str(BAD_REFERENCE) / PROFILE_FILE).write_text(json.dumps(broken))
    (root / "config.yaml").write_text(f"models:\n  {CELL}:\n    version_policy: all\n")
    return root


@pytest.fixture(scope="module")
def server(repo: Path):
    # every image of the 100-image batches feeds the input detectors (the default watches 8 per request)
    proc = start_server(repo, "--model-config", str(repo / "config.yaml"), "--default-model", CELL,
                        "--monitoring-images-per-request", "0")
    yield proc
    assert proc.stop() == 0, proc.log()


@pytest.fixture(scope="module")
def unseen() -> tuple[np.ndarray, np.ndarray]:
    """Digits neither the model nor its reference saw: the test split."""
    with np.load(MNIST_NPZ) as data:
        return data["x_test"], data["y_test"]


def monitoring(server, version: int) -> pb.VersionMonitoring:
    with grpc.insecure_channel(server.target) as channel:
        status = pb_grpc.DigitClassifierStub(channel).GetModelStatus(pb.GetModelStatusRequest(name=CELL), timeout=30)
    (found,) = [v for v in status.versions if v.version == version]
    return found.monitoring


@pytest.fixture(scope="module")
def sent(server, unseen) -> dict[str, tuple[float, pb.VersionMonitoring]]:
    """Each shift's 1,000 predictions sent to its version without labels: (true accuracy, monitoring)."""
    results = {}
    with DigitsClient(server.target) as client:
        for name, version in VERSIONS.items():
            images, labels = shifted_stream(name, *unseen, PREDICTIONS, seed=version)
            right = 0
            for start in range(0, PREDICTIONS, 100):
                batch = client.classify_batch(images[start:start + 100], CELL, version=version, timeout=60)
                right += int((np.array(batch.digits) == labels[start:start + 100]).sum())
            results[name] = (right / PREDICTIONS, monitoring(server, version))
    return results


def test_clean_traffic_no_alarm_and_the_estimate_tracks_true_accuracy(sent) -> None:
    true_accuracy, clean = sent["clean"]
    assert clean.has_reference and clean.predictions == PREDICTIONS and clean.labelled == 0
    assert [s.signal for s in clean.signals if s.alarm or s.alarms] == []
    assert clean.estimated_low <= clean.estimated_accuracy <= clean.estimated_high
    assert abs(clean.estimated_accuracy - true_accuracy) <= 0.02, (clean.estimated_accuracy, true_accuracy)


@pytest.mark.parametrize("shift", [name for name in SHIFTS if name != "clean"])
def test_each_shift_raises_its_alarm_without_labels(sent, shift: str) -> None:
    true_accuracy, watched = sent[shift]
    assert watched.predictions == PREDICTIONS and watched.labelled == 0
    fired = {s.signal for s in watched.signals if s.alarm}
    assert fired & EXPECTED[shift], (shift, fired, true_accuracy)
    for signal in watched.signals:
        if signal.alarm:
            assert signal.alarms >= 1 and 0 < signal.last_alarm_at <= PREDICTIONS and signal.moved


def test_versions_without_a_usable_reference_are_served_and_say_so(server, unseen) -> None:
    with DigitsClient(server.target) as client:
        for version in (NO_REFERENCE, BAD_REFERENCE):
            assert len(client.classify_batch(unseen[0][:10], CELL, version=version).predictions) == 10
        models = {v.version: v for v in client.model_status(CELL).versions}
    assert models[1].reference == "yes" and models[NO_REFERENCE].reference == "no"
    missing, broken = monitoring(server, NO_REFERENCE), monitoring(server, BAD_REFERENCE)
    assert not missing.has_reference and missing.reference_error == "" and not missing.signals
    assert not broken.has_reference and "signals.confidence.counts" in broken.reference_error


def test_labelled_accuracy_beside_the_estimate(server, unseen) -> None:
    """Labels sent with requests count as labelled accuracy beside the (unchanged) estimate."""
    images, labels = unseen[0][:200], unseen[1][:200]
    version = VERSIONS["clean"]
    before = monitoring(server, version)
    with DigitsClient(server.target) as client:
        batch = client.classify_batch(images, CELL, version=version, true_labels=labels.tolist())
    after = monitoring(server, version)
    assert after.labelled == before.labelled + 200
    assert after.labelled_accuracy == pytest.approx(float((np.array(batch.digits) == labels).mean()))
    assert after.labelled_low <= after.labelled_accuracy <= after.labelled_high
    assert after.predictions == before.predictions + 200


def test_digits_monitor_shows_each_version(server, sent, capsys) -> None:
    """`digits monitor`: the same figures as the status RPC, in JSON and as a table."""
    capsys.readouterr()
    assert digits_cli(["--target", server.target, "monitor", CELL, "--json"]) == 0
    versions = {v["version"]: v for v in json.loads(capsys.readouterr().out)["versions"]}
    inverted = versions[VERSIONS["inverted"]]
    assert "background" in inverted["drifting"] and inverted["predictions"] == PREDICTIONS
    assert inverted["estimated"] == pytest.approx(sent["inverted"][1].estimated_accuracy)
    assert versions[VERSIONS["clean"]]["drifting"] == []
    assert versions[NO_REFERENCE]["has_reference"] is False
    assert digits_cli(["--target", server.target, "monitor"]) == 0
    text = capsys.readouterr().out
    assert "no reference" in text and "drift: background: fired" in text and "moved [" in text
    assert text.splitlines()[0].split()[:3] == ["MODEL", "VERSION", "PREDICTIONS"]
