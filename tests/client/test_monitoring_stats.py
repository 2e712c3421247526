"""digits.monitoring: input summaries, the reference profile and its JSON, the CBPE estimate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from digits.monitoring.estimate import AccuracyEstimate, LabelledAccuracy, disagree
from digits.monitoring.profile import (
    CONFIDENCE_EDGES,
    SIGNALS,
    ProfileError,
    ReferenceProfile,
    build_profile,
    signal_values,
)
from digits.monitoring.summaries import SUMMARY_NAMES, summarise
from tests.conftest import MNIST_NPZ
from tests.shifts import SHIFTS, shifted_stream


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(MNIST_NPZ) as data:
        return data["x_test"][:600], data["y_test"][:600]


def test_summaries_of_a_drawn_box() -> None:
    image = np.zeros((28, 28), dtype=np.uint8)
    image[5:15, 10:14] = 200  # a 10 x 4 box of ink
    image[20, 20] = 20  # faint: not ink, not counted in the intensity
    row = dict(zip(SUMMARY_NAMES, summarise(image)[0]))
    assert row["background"] == 0.0
    assert row["ink_fraction"] == pytest.approx(40 / 784)
    assert row["ink_intensity"] == pytest.approx(200 / 255)
    assert (row["box_height"], row["box_width"]) == (10, 4)
    assert (row["box_row"], row["box_column"]) == (9.5, 11.5)


def test_summaries_of_an_empty_image_and_bad_shapes() -> None:
    row = summarise(np.zeros((1, 28, 28), dtype=np.uint8))[0]
    assert row[3] == 0 and row[4] == 0 and row[5] == -1 and row[6] == -1
    with pytest.raises(ValueError, match="images"):
        summarise(np.zeros((2, 2, 2, 2), dtype=np.uint8))


def test_summaries_are_per_image_whatever_the_batch(digits: tuple[np.ndarray, np.ndarray]) -> None:
    images = digits[0][:50]
    batch = summarise(images)
    assert np.array_equal(batch, np.vstack([summarise(image) for image in images]))


@pytest.mark.parametrize("shift, summary, direction", [
    ("inverted", "background", +1), ("gaussian_noise", "background", +1), ("thick_strokes", "ink_fraction", +1),
    ("half_size", "box_height", -1),
])
def test_each_covariate_shift_moves_its_summary(
    digits: tuple[np.ndarray, np.ndarray], shift: str, summary: str, direction: int
) -> None:
    images, labels = digits
    moved, _ = shifted_stream(shift, images, labels, 300, seed=1)
    column = SUMMARY_NAMES.index(summary)
    before, after = summarise(images)[:, column].mean(), summarise(moved)[:, column].mean()
    assert direction * (after - before) > 0.2 * max(abs(before), 0.05)


def test_three_classes_keeps_three_labels(digits: tuple[np.ndarray, np.ndarray]) -> None:
    _, labels = shifted_stream("three_classes", *digits, 200)
    assert set(labels.tolist()) == {0, 1, 7}
    assert len(SHIFTS) == 7


def _profile(digits: tuple[np.ndarray, np.ndarray], seed: int = 0) -> tuple[ReferenceProfile, np.ndarray]:
    """A profile of a calibrated synthetic classifier: right with probability = its confidence."""
    images, labels = digits
    rng = np.random.default_rng(seed)
    confidence = rng.uniform(0.35, 1.0, len(labels))
    right = rng.random(len(labels)) < confidence
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, 9, len(labels))) % 10)
    probabilities = np.full((len(labels), 10), 0.0)
    probabilities[np.arange(len(labels)), predicted] = confidence
    rest = (1 - confidence) / 9
    probabilities += np.where(probabilities == 0, rest[:, None], 0)
    return build_profile(images, probabilities, labels, "synthetic"), probabilities


def test_profile_counts_and_calibration_table(digits: tuple[np.ndarray, np.ndarray]) -> None:
    profile, probabilities = _profile(digits)
    assert tuple(profile.signals) == SIGNALS
    assert all(signal.total == len(probabilities) for signal in profile.signals.values())
    assert profile.signals["predicted_class"].counts == tuple(np.bincount(probabilities.argmax(1), minlength=10))
    table = profile.calibration
    assert sum(table.counts) == len(probabilities) and len(table.counts) == len(CONFIDENCE_EDGES) + 1
    # a calibrated classifier: each bin's accuracy is near the bin's mean confidence
    full = [b for b, n in enumerate(table.counts) if n >= 60]
    for b in full:
        assert table.accuracy[b] == pytest.approx(table.confidence_sums[b] / table.counts[b], abs=0.15)
    values = signal_values(digits[0], probabilities)
    for column, name in enumerate(SIGNALS[2:], start=2):  # summaries: ~deciles, the outer bins empty
        counts = profile.signals[name].counts
        assert counts[0] == 0 and counts[-1] == 0
        ties = np.max(np.unique(values[:, column], return_counts=True)[1])
        assert max(counts) <= ties + 0.1 * len(values) + 1  # a decile, plus the ties at one value


def test_profile_json_round_trip(digits: tuple[np.ndarray, np.ndarray]) -> None:
    profile, _ = _profile(digits)
    again = ReferenceProfile.loads(profile.dumps())
    assert again == profile
    assert np.array_equal(again.calibration.accuracy, profile.calibration.accuracy)


@pytest.mark.parametrize("change, field", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["signals"].pop("background"), "signals.background"),
    (lambda d: d["signals"]["confidence"]["counts"].append(1), "signals.confidence.counts"),
    (lambda d: d["signals"]["box_row"]["edges"].reverse(), "signals.box_row.edges"),
    (lambda d: d["signals"]["predicted_class"]["counts"].__setitem__(0, -3), "signals.predicted_class.counts"),
    (lambda d: d["calibration"]["correct"].__setitem__(5, 10**9), "calibration.correct"),
    (lambda d: d["calibration"].update(edges=[0.5]), "calibration.edges"),
    (lambda d: d.update(examples="many"), "examples"),
    (lambda d: d.update(labelled_accuracy=2), "labelled_accuracy"),
])
def test_a_bad_profile_names_the_field(digits: tuple[np.ndarray, np.ndarray], change, field: str) -> None:
    document = json.loads(_profile(digits)[0].dumps())
    change(document)
    with pytest.raises(ProfileError, match=field.replace(".", r"\.")):
        ReferenceProfile.from_json(document)
    with pytest.raises(ProfileError, match="not JSON"):
        ReferenceProfile.loads("{")


def test_cbpe_estimate_tracks_a_calibrated_classifier(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Fixed-seed simulation: 400 streams of 1,000 predictions from a calibrated classifier; the
    95% interval covers the realised accuracy ~95% of the time and the error is well under 2 points."""
    profile, _ = _profile(digits)
    rng = np.random.default_rng(7)
    confidence = rng.uniform(0.35, 1.0, (400, 1000))
    calibrated = profile.calibration.calibrated(confidence)
    right = rng.random(confidence.shape) < calibrated  # calibration holds by construction
    covered, errors = 0, []
    for c, r in zip(calibrated, right):
        estimate = AccuracyEstimate(len(c), float(c.sum()), float((c * (1 - c)).sum()))
        low, high = estimate.interval()
        covered += low <= r.mean() <= high
        errors.append(abs(estimate.accuracy - r.mean()))
    assert 0.92 <= covered / 400 <= 0.98
    assert np.quantile(errors, 0.95) < 0.03 and np.mean(errors) < 0.015


def test_estimates_add_up_across_replicas_and_disagreement() -> None:
    a, b = AccuracyEstimate(100, 90.0, 8.0), AccuracyEstimate(300, 240.0, 40.0)
    both = a + b
    assert both.accuracy == pytest.approx(330 / 400)
    assert AccuracyEstimate(0, 0, 0).accuracy is None and AccuracyEstimate(0, 0, 0).interval() is None
    assert not disagree(both, LabelledAccuracy(0, 0))
    assert not disagree(both, LabelledAccuracy(200, 166))
    assert disagree(both, LabelledAccuracy(200, 100))  # 0.50 labelled vs 0.83 estimated


def test_the_closed_form_wilson_interval_is_scipys() -> None:
    """estimate.wilson_interval (stdlib only, for the server) against scipy's binomtest Wilson interval."""
    from digits.experiments.statistics import wilson_interval as scipy_wilson
    from digits.monitoring.estimate import wilson_interval, z_of

    assert z_of(0.95) == pytest.approx(1.959963984540054)
    for successes, trials in ((0, 5), (3, 10), (97, 100), (500, 500), (4321, 10000)):
        assert wilson_interval(successes, trials) == pytest.approx(scipy_wilson(successes, trials), abs=1e-9)
