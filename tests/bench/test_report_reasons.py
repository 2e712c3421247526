"""The harness report says why each missed target is missed, and nothing for the targets met."""

from __future__ import annotations

from bench import litert_targets, report


def document(*targets: tuple[int | str, bool | None]) -> dict:
    return {"date": "2026-11-29T07:40:23+00:00", "mode": "full", "seconds": 420.0, "machine": "2 cores",
            "cells": ["lstm"], "runs": {},
            "targets": [{"cell": "lstm", "target": number, "what": f"target {number}", "value": 1.0, "goal": "-",
                         "met": met, "detail": ""} for number, met in targets]}


def test_each_missed_target_gets_its_reason_once() -> None:
    doc = document((1, False), (1, False), (2, False), (3, True), (7, None), ("b", False))
    assert report.missed_reasons(doc) == [f"target 1: {report.MISSED_BECAUSE['1']}",
                                          f"target 2: {report.MISSED_BECAUSE['2']}"]
    page = report.markdown(doc)
    assert "Why the missed ones are missed" in page and report.MISSED_BECAUSE["2"] in page
    assert report.MISSED_BECAUSE["3"] not in page and report.MISSED_BECAUSE["7"] not in page
    assert f"missed target 1: {report.MISSED_BECAUSE['1']}" in report.table(doc)


def test_a_run_that_meets_everything_prints_no_reasons() -> None:
    doc = document((1, True), (2, True), (5, True))
    assert report.missed_reasons(doc) == []
    assert "Why the missed" not in report.markdown(doc) and "missed target" not in report.table(doc)


def test_every_issue_target_has_a_reason() -> None:
    assert set(report.MISSED_BECAUSE) == {str(n) for n in range(1, 8)}


def test_every_litert_target_that_can_be_missed_has_a_reason() -> None:
    doc = document(("L1", False), ("L2", False), ("L3", False), ("L4", None), ("L5", False), ("L6", None))
    assert report.missed_reasons(doc) == [f"target {n}: {litert_targets.MISSED_BECAUSE[n]}"
                                          for n in ("L1", "L2", "L3", "L5")]
