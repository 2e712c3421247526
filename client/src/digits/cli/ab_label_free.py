"""The "estimated, no labels" part of an A/B report (digits.experiments.label_free) as tables:
kept apart from the labelled tables and verdicts, under a heading that says what it is."""

from __future__ import annotations

from digits.v1 import digits_pb2

__all__ = ["ARM_HEADER", "FIELDS", "HEADING", "PAIR_HEADER", "arm_rows", "estimated", "pair_rows"]

ARM_HEADER = ("arm", "predictions", "estimated accuracy", "95% interval", "calibrated by")
PAIR_HEADER = ("pair (a vs b)", "shadow agreement", "95% Wilson", "est. a - b", "conf. sequence")
# The report's label-free fields (`--json` names them under figures."estimated, no labels").
FIELDS = ("arms.estimated_predictions", "arms.estimated_accuracy", "arms.estimated_accuracy_low",
          "arms.estimated_accuracy_high", "arms.estimated_calibrated_sum", "arms.estimated_variance_sum",
          "arms.estimated_uncalibrated", "arms.estimate_basis", "pairs.shadow_agreement_rate",
          "pairs.shadow_agreement_low", "pairs.shadow_agreement_high", "pairs.estimated_difference",
          "pairs.estimated_sequence_low", "pairs.estimated_sequence_high", "pairs.estimated_sequence_confidence",
          "label_free_method")


HEADING = "estimated, no labels (CBPE; not part of any verdict above; valid only while calibration holds)"


def estimated(report: digits_pb2.ExperimentReport) -> bool:
    """Whether the report has label-free figures (not an older server, some live prediction)."""
    return any(a.estimated_predictions for a in report.arms)


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def arm_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row per arm: its CBPE estimate, interval and what calibrated it."""
    return [
        (a.arm, str(a.estimated_predictions),
         _pct(a.estimated_accuracy) if a.estimated_predictions else "-",
         f"[{_pct(a.estimated_accuracy_low)}, {_pct(a.estimated_accuracy_high)}]" if a.estimated_predictions else "-",
         a.estimate_basis or "-")
        for a in report.arms
    ]


def pair_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row per pair: shadow agreement and the estimates' difference with its sequence."""
    rows = []
    for p in report.pairs:
        shadowed = p.shadow_agree + p.shadow_disagree
        rows.append((
            f"{p.arm_a} vs {p.arm_b}", _pct(p.shadow_agreement_rate) if shadowed else "-",
            f"[{_pct(p.shadow_agreement_low)}, {_pct(p.shadow_agreement_high)}]" if shadowed else "-",
            _points(p.estimated_difference),
            (f"[{_points(p.estimated_sequence_low)}, {_points(p.estimated_sequence_high)}] "
             f"({p.estimated_sequence_confidence:.1%})"),
        ))
    return rows
