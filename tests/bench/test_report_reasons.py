"""The harness report links each missed target to its dated, measured reasons in
docs/performance-findings.md, and says nothing for the targets met. It used to print fixed prose
with the numbers of one date (MISSED_BECAUSE) under every later miss."""

from __future__ import annotations

import re

from bench import report
from tests.test_docs import DOCS, anchors


def document(*targets: tuple[int | str, bool | None]) -> dict:
    return {"date": "2026-11-29T07:40:23+00:00", "mode": "full", "seconds": 420.0, "machine": "2 cores",
            "cells": ["lstm"], "runs": {},
            "targets": [{"cell": "lstm", "target": number, "what": f"target {number}", "value": 1.0, "goal": "-",
                         "met": met, "detail": ""} for number, met in targets]}


def test_each_missed_target_links_its_dated_findings_once() -> None:
    doc = document((1, False), (1, False), (2, False), (3, True), (7, None), ("b", False))
    assert report.missed_reasons(doc) == [
        f"target 1: reasons measured on 2026-11-29: docs/performance-findings.md#{report.FINDINGS['1'][1]}",
        f"target 2: reasons measured on 2026-11-29: docs/performance-findings.md#{report.FINDINGS['2'][1]}",
    ]
    page = report.markdown(doc)
    assert f"- target 2: [findings of 2026-11-29](../performance-findings.md#{report.FINDINGS['2'][1]})" in page
    assert report.FINDINGS["3"][1] not in page and report.FINDINGS["7"][1] not in page
    assert "missed target 1: reasons measured on 2026-11-29" in report.table(doc)


def test_the_report_prints_no_measured_numbers_of_its_own() -> None:
    """No figure (us, MiB, x) is printed as a reason: those belong to a dated measurement."""
    doc = document(*((n, False) for n in range(1, 8)))
    reasons = "\n".join(report.missed_reasons(doc))
    assert not re.search(r"\d+\s*(us|MiB|x\b|%)", reasons), reasons


def test_a_run_that_meets_everything_prints_no_reasons() -> None:
    doc = document((1, True), (2, True), (5, True))
    assert report.missed_reasons(doc) == []
    assert "Why the missed" not in report.markdown(doc) and "missed target" not in report.table(doc)


def test_every_issue_target_links_a_dated_heading_that_exists() -> None:
    assert set(report.FINDINGS) >= {str(n) for n in range(1, 8)} | {"L1", "L2", "L3", "L5"}
    page = DOCS / report.FINDINGS_PAGE
    assert {anchor for _, anchor in report.FINDINGS.values()} <= anchors(page)
    assert all(date in anchor for date, anchor in report.FINDINGS.values())


def test_every_litert_target_that_can_be_missed_links_its_findings() -> None:
    doc = document(("L1", False), ("L2", False), ("L3", False), ("L4", None), ("L5", False), ("L6", None))
    assert [reason.split(":")[0] for reason in report.missed_reasons(doc)] == [
        "target L1", "target L2", "target L3", "target L5"]
