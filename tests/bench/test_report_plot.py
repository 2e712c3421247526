"""The harness report's plot skips a run that answered nothing instead of crashing the harness."""

from __future__ import annotations

from pathlib import Path

from bench import report


def run(rps: float | None, p50: float | None, p99: float | None) -> dict:
    return {"requests_per_second": rps, "latency_ms": {"p50": p50, "p99": p99}}


def test_a_run_without_latency_is_left_out_of_the_plot(tmp_path: Path) -> None:
    document = {
        "cells": ["lstm"], "date": "2026-11-29T00:00:00",
        "runs": {
            "echo": {"unary_c1": run(900.0, 0.5, 1.0), "unary_c16": run(4000.0, 3.0, 6.0)},
            "ours": {"lstm/unary_c1": run(800.0, 0.9, 2.0), "lstm/unary_c16": run(0.0, None, None)},
        },
    }
    path = report.plot(document, tmp_path / "plot.png")
    assert path.stat().st_size > 0
