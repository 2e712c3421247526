"""The small pieces every target table of the harness is built from (bench/report.py's issue-14
targets, bench/litert_targets.py's L1-L6): a target row, ratios of measured rates, a goal check."""

from __future__ import annotations


def target(cell: str, number: int | str, what: str, value: float | None, goal: str, ok: bool | None,
           detail: str) -> dict:
    """One row of the targets table; `ok` None: not measured in this run."""
    return {"cell": cell, "target": number, "what": what, "value": value, "goal": goal, "met": ok, "detail": detail}


def rate(run: dict | None, field: str = "requests_per_second") -> float | None:
    """A run's measured `field`, None when the run is missing."""
    return None if run is None else run[field]


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, None when either is missing (or b is 0)."""
    return None if a is None or not b else a / b


def check(value: float | None, goal: float, at_most: bool) -> bool | None:
    """Whether `value` meets `goal` (at most or at least it), None when not measured."""
    if value is None:
        return None
    return value <= goal if at_most else value >= goal
