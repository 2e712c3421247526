"""Evaluation statistics, the progress bar and the ASCII preview (pure functions)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from digits.cli.progress import ProgressBar
from digits.evaluation import latency_summary, summarize, top_confusions
from digits.imageprep import ascii_art


def test_summarize_counts_and_exact_accuracy():
    truth = [0, 0, 1, 1, 1, 2, 9]
    guess = [0, 1, 1, 1, 7, 2, 9]
    served = ["lstm:3"] * 6 + ["lstm:4"]
    report = summarize(truth, guess, [0.001] * 7, served, wall_seconds=2.0)
    assert (report.n, report.correct) == (7, 5)
    assert report.accuracy == 5 / 7
    assert report.per_class_accuracy[:3] == [0.5, 2 / 3, 1.0]
    assert report.per_class_accuracy[3] is None and report.per_class_count[3] == 0
    assert report.per_class_count == [2, 3, 1, 0, 0, 0, 0, 0, 0, 1]
    assert report.confusion[0][1] == 1 and report.confusion[1][7] == 1 and report.confusion[9][9] == 1
    assert (report.model, report.version) == ("lstm", 3)
    assert report.served_by == {"lstm:3": 6, "lstm:4": 1}
    assert report.throughput_per_second == 3.5
    assert list(report.to_dict())[:5] == ["model", "version", "n", "correct", "accuracy"]


def test_summarize_rejects_mismatch_and_empty():
    with pytest.raises(ValueError):
        summarize([1, 2], [1], [0.1], ["a:1"])
    with pytest.raises(ValueError):
        summarize([], [], [], [])


def test_latency_summary_in_milliseconds():
    summary = latency_summary(np.arange(1, 101) / 1000.0)  # 1..100 ms
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p90"] == pytest.approx(90.1)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["mean"] == pytest.approx(50.5) and summary["max"] == pytest.approx(100.0)
    assert latency_summary([]) == {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "max": 0.0}


def test_top_confusions_order():
    confusion = np.zeros((10, 10), int)
    confusion[4][9] = 5
    confusion[7][1] = 5
    confusion[3][8] = 9
    confusion[2][2] = 100
    assert top_confusions(confusion.tolist(), k=2) == [(3, 8, 9), (4, 9, 5)]
    assert top_confusions(np.eye(10, dtype=int).tolist()) == []


def test_progress_bar_disabled_writes_nothing():
    stream = io.StringIO()
    with ProgressBar(10, stream=stream) as bar:  # StringIO is not a tty
        for _ in range(10):
            bar.update()
    assert stream.getvalue() == ""


def test_progress_bar_enabled_draws_in_place():
    stream = io.StringIO()
    with ProgressBar(4, label="eval", stream=stream, enabled=True, width=8) as bar:
        bar.update(2)
        assert bar.render().startswith("eval [####----] 2/4  50%")
        bar.update(2)
    text = stream.getvalue()
    assert text.startswith("\r") and text.endswith("\n")
    assert "[########] 4/4 100%" in text


def test_ascii_art():
    image = np.zeros((28, 28), np.uint8)
    image[5, 4] = 255
    image[6, 4] = 128
    lines = ascii_art(image).split("\n")
    assert len(lines) == 28
    assert lines[5] == " " * 8 + "@@" and lines[6] == " " * 8 + "++"
    assert ascii_art(image.astype(np.float32) / 255.0) == ascii_art(image)
