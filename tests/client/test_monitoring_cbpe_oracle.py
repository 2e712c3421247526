"""The CBPE estimate against NannyML's (the method's authors), run in .venv-oracle.

Both estimators calibrate on a labelled reference (ours: histogram binning of the confidence,
NannyML: isotonic regression per class) and estimate an unlabelled analysis set. The classifier
is deliberately miscalibrated (right with probability confidence^2), so calibration matters.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from digits.monitoring.profile import build_profile
from tests.tools import oracle_python

REPO = Path(__file__).resolve().parents[2]


def _predictions(rng: np.random.Generator, n: int, low: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    labels = rng.integers(0, 10, n)
    confidence = rng.uniform(low, 1.0, n)
    right = rng.random(n) < confidence**2
    predicted = np.where(right, labels, (labels + 1 + rng.integers(0, 9, n)) % 10)
    probabilities = np.tile(((1 - confidence) / 9)[:, None], (1, 10))
    probabilities[np.arange(n), predicted] = confidence
    return probabilities, labels, right


@pytest.mark.parametrize("analysis_low", [0.3, 0.7])  # the same mix as the reference, then a confident one
def test_cbpe_matches_nannyml(tmp_path: Path, analysis_low: float) -> None:
    python = oracle_python()
    rng = np.random.default_rng(11)
    reference, labels, _ = _predictions(rng, 20_000, 0.3)
    analysis, _, right = _predictions(rng, 20_000, analysis_low)
    data = tmp_path / "cbpe.npz"
    np.savez(data, reference_probabilities=reference, reference_labels=labels, analysis_probabilities=analysis)
    run = subprocess.run([str(python), str(REPO / "tests/oracle/nannyml_cbpe.py"), str(data)],
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    nannyml = json.loads(run.stdout.strip().splitlines()[-1])["accuracy"]
    profile = build_profile(np.zeros((len(labels), 28, 28), np.uint8), reference, labels, "synthetic")
    ours = float(profile.calibration.calibrated(analysis.max(axis=1)).mean())
    assert ours == pytest.approx(nannyml, abs=0.01)
    assert ours == pytest.approx(right.mean(), abs=0.015)  # and both near the accuracy realised
    assert abs(ours - analysis.max(axis=1).mean()) > 0.05  # the raw confidence would be far off
