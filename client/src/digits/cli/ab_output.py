"""An experiment report as a terminal table, a Markdown file and a PNG chart.

The PNG needs matplotlib, an optional extra (``pip install 'digits-client[report]'``); it is
imported only when a chart is drawn.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digits.cli import ab_label_free
from digits.experiments.replay import Replay, Sample
from digits.v1 import digits_pb2

__all__ = ["arm_rows", "pair_rows", "always_valid_rows", "guardrail_rows", "decision_rows", "format_table",
           "figures", "render_text", "render_markdown", "draw_png", "client_latencies"]

ARM_HEADER = ("arm", "model", "requests", "errors", "labelled", "accuracy", "95% CI", "p50 ms", "p95 ms", "p99 ms")
PAIR_HEADER = ("pair (a vs b)", "a - b", "95% CI", "z-test p", "paired n", "McNemar p", "agree", "verdict")
ALWAYS_VALID_HEADER = ("pair (a vs b)", "test", "a - b conf. sequence", "p", "Holm p", "verdict")
GUARDRAIL_HEADER = ("arm", "vs", "guardrail", "value", "baseline", "allowed", "excess conf. sequence", "status")
DECISION_HEADER = ("time (UTC)", "decision", "arm", "weight", "reason")
# Which fields of an ExperimentReport are which kind of statistic (`--json` says it beside the report).
FIXED_HORIZON_FIELDS = ("arms.accuracy_low", "arms.accuracy_high", "pairs.accuracy_difference",
                        "pairs.difference_low", "pairs.difference_high", "pairs.z_test_p_value",
                        "pairs.mcnemar_p_value", "pairs.more_needed_per_arm", "pairs.fixed_horizon_verdict")
ALWAYS_VALID_FIELDS = ("pairs.always_valid_test", "pairs.always_valid_p_value", "pairs.always_valid_p_holm",
                       "pairs.sequence_low", "pairs.sequence_high", "pairs.sequence_confidence", "guardrails")


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _points(value: float) -> str:
    return f"{value * 100:+.1f}"


def _p(value: float) -> str:
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def arm_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row of cells per arm."""
    return [
        (
            a.arm, f"{a.model}:{a.version}", str(a.requests), _pct(a.error_rate), str(a.labelled),
            _pct(a.accuracy) if a.labelled else "-",
            f"[{_pct(a.accuracy_low)}, {_pct(a.accuracy_high)}]" if a.labelled else "-",
            f"{a.latency_p50_seconds * 1e3:.2f}", f"{a.latency_p95_seconds * 1e3:.2f}",
            f"{a.latency_p99_seconds * 1e3:.2f}",
        )
        for a in report.arms
    ]


def pair_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row of cells per pair of arms."""
    rows = []
    for p in report.pairs:
        paired = p.both_right + p.only_a_right + p.only_b_right + p.both_wrong
        agreement = p.shadow_agree + p.shadow_disagree
        rows.append((
            f"{p.arm_a} vs {p.arm_b}", _points(p.accuracy_difference),
            f"[{_points(p.difference_low)}, {_points(p.difference_high)}]", _p(p.z_test_p_value),
            str(paired), _p(p.mcnemar_p_value) if paired else "-",
            _pct(p.shadow_agree / agreement) if agreement else "-", p.fixed_horizon_verdict or p.verdict,
        ))
    return rows


def always_valid_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row per pair: the always-valid test, confidence sequence, p-values and the verdict."""
    return [
        (f"{p.arm_a} vs {p.arm_b}", p.always_valid_test or "-",
         f"[{_points(p.sequence_low)}, {_points(p.sequence_high)}] ({p.sequence_confidence:.1%})",
         _p(p.always_valid_p_value), _p(p.always_valid_p_holm), p.verdict)
        for p in report.pairs if p.verdict_basis
    ]


def figures(report: digits_pb2.ExperimentReport) -> dict[str, object]:
    """For `--json`: which fields are fixed-horizon and which always-valid, and what `pairs.verdict`
    rests on; empty for a report without always-valid results (an older server)."""
    if not any(p.verdict_basis for p in report.pairs):
        return {}
    return {"figures": {
        "fixed-horizon": {"valid": "only when read once, at a sample size fixed in advance",
                          "fields": list(FIXED_HORIZON_FIELDS)},
        "always-valid": {"valid": "at every look, however often, including when you stop because of what you saw",
                         "fields": list(ALWAYS_VALID_FIELDS)},
        "verdict": report.pairs[0].verdict_basis,
        "estimated, no labels": {"valid": "only while the arms' calibration holds on live inputs; never in a verdict",
                                 "fields": list(ab_label_free.FIELDS)},
    }}


def _guard_value(metric: str, value: float) -> str:
    return f"{value * 1e3:.2f} ms" if metric == "latency" else _pct(value)


def guardrail_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row per guardrail of a candidate arm."""
    rows = []
    for g in report.guardrails:
        if g.metric == "sample-ratio":  # the share of labelled requests vs the weights' (sample_ratio.py)
            rows.append((g.arm, g.baseline_arm, g.metric, _pct(g.value), _pct(g.baseline_value), "= its weight",
                         f"ln(max e) - ln(1/alpha) = {g.excess_low:+.2f}", g.status))
            continue
        allowed = f"<= {1 + g.tolerance:g}x" if g.metric == "latency" else f"<= +{g.tolerance * 100:g} pt"
        scale = 1e3 if g.metric == "latency" else 100
        unit = " ms" if g.metric == "latency" else " pt"
        rows.append((g.arm, g.baseline_arm, g.metric, _guard_value(g.metric, g.value),
                     _guard_value(g.metric, g.baseline_value), allowed,
                     f"[{g.excess_low * scale:+.2f}, {g.excess_high * scale:+.2f}]{unit}", g.status))
    return rows


def decision_rows(report: digits_pb2.ExperimentReport) -> list[tuple[str, ...]]:
    """One row per recorded rollout step or decision."""
    return [(time.strftime("%H:%M:%S", time.gmtime(d.unix_time)), d.decision, d.candidate_arm, f"{d.weight:g}%",
             d.reason) for d in report.decisions]


def _decision_parts(report: digits_pb2.ExperimentReport) -> list[str]:
    parts = []
    if any(p.verdict_basis for p in report.pairs):
        basis = report.pairs[0].verdict_basis
        parts += ["", f"always-valid (valid at every look; the verdicts rest on the {basis} tests):",
                  format_table(ALWAYS_VALID_HEADER, always_valid_rows(report))]
    if report.guardrails:
        parts += ["", "guardrails (candidate vs the first arm; breached when the excess is surely > 0):",
                  format_table(GUARDRAIL_HEADER, guardrail_rows(report))]
    if report.decisions:
        parts += ["", "rollout:", format_table(DECISION_HEADER, decision_rows(report))]
    if report.method:
        parts += ["", f"method: {report.method}"]
    return parts


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell; the last column left as is."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        lines.append("  ".join([*cells, str(row[-1])]).rstrip())
    return "\n".join(lines)


def client_latencies(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Client-measured latencies (seconds) of the answered requests, per arm."""
    by_arm: dict[str, list[float]] = defaultdict(list)
    for sample in samples:
        if not sample.error:
            by_arm[sample.arm].append(sample.latency)
    return {arm: np.asarray(values) for arm, values in sorted(by_arm.items())}


def _replay_lines(run: Replay) -> list[str]:
    errors = sum(1 for s in run.samples if s.error)
    keys = f"{run.keys} routing keys" if run.keys else "no routing keys (random by weight)"
    lines = [f"sent {len(run.samples)} requests in {run.seconds:.1f} s ({run.rate:g}/s offered, "
             f"{run.achieved_rate:.0f}/s answered), {keys}, {errors} failed"]
    for arm, values in client_latencies(run.samples).items():
        p50, p95, p99 = np.percentile(values, [50, 95, 99]) * 1e3
        lines.append(f"client-measured latency of {arm}: p50 {p50:.2f} ms, p95 {p95:.2f} ms, p99 {p99:.2f} ms")
    return lines


def render_text(report: digits_pb2.ExperimentReport, run: Replay | None = None) -> str:
    """The report as plain-text tables (what the CLI prints)."""
    e = report.experiment
    state = "paused" if e.paused else "running"
    weights = ", ".join(f"{a.name}={a.weight:g}" for a in e.arms)
    parts = [f"experiment {e.name} ({state}; weights {weights}; shadow {e.shadow_percent:g}%)", ""]
    if run is not None:
        parts += [*_replay_lines(run), ""]
    parts += [format_table(ARM_HEADER, arm_rows(report)), f"latency: {report.latency_source}", ""]
    if any(p.verdict_basis for p in report.pairs):
        parts += ["fixed-horizon (valid for one look at a planned sample size):"]
    parts += [format_table(PAIR_HEADER, pair_rows(report))]
    parts += _decision_parts(report)
    if ab_label_free.estimated(report):
        parts += ["", f"{ab_label_free.HEADING}:", format_table(ab_label_free.ARM_HEADER, ab_label_free.arm_rows(report)),
                  "", format_table(ab_label_free.PAIR_HEADER, ab_label_free.pair_rows(report)),
                  f"label-free method: {report.label_free_method}"]
    return "\n".join(parts)


def _selector(spec: digits_pb2.ModelSpec) -> str:
    """'lstm', 'lstm:2' or 'lstm@stable'."""
    if spec.HasField("version"):
        return f"{spec.name}:{spec.version}"
    return f"{spec.name}@{spec.version_label}" if spec.version_label else spec.name


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: digits_pb2.ExperimentReport, run: Replay | None = None, png: str | None = None) -> str:
    """The report as a Markdown document (ab-report.md)."""
    e = report.experiment
    parts = [f"# A/B report: {e.name}", ""]
    parts += ["- arms: " + ", ".join(f"`{a.name}` = {_selector(a.model)} (weight {a.weight:g})" for a in e.arms)]
    parts += [f"- shadow: {e.shadow_percent:g}% of requests mirrored to the other arms; "
              f"{'paused' if e.paused else 'running'}"]
    if run is not None:
        parts += [f"- {line}" for line in _replay_lines(run)]
    parts += ["", "## Verdicts", ""]
    parts += [f"- **{p.arm_a} vs {p.arm_b}**: {p.verdict}" for p in report.pairs]
    parts += ["", "## Arms", "", _markdown_table(ARM_HEADER, arm_rows(report)), "",
              f"Latency percentiles: {report.latency_source}.", ""]
    parts += ["## Pairs", "", _markdown_table(PAIR_HEADER, pair_rows(report)), "",
              "Difference a - b in accuracy points with Newcombe's 95% interval; the z-test compares the "
              "arms' own (independent) traffic; McNemar's test uses paired outcomes of shadowed requests.", ""]
    if any(p.verdict_basis for p in report.pairs):
        parts += ["## Always-valid", "", _markdown_table(ALWAYS_VALID_HEADER, always_valid_rows(report)), "",
                  f"Method: {report.method}", ""]
    if report.guardrails:
        parts += ["## Guardrails", "", _markdown_table(GUARDRAIL_HEADER, guardrail_rows(report)), ""]
    if report.decisions:
        parts += ["## Rollout", "", _markdown_table(DECISION_HEADER, decision_rows(report)), ""]
    if ab_label_free.estimated(report):
        parts += [f"## {ab_label_free.HEADING[0].upper()}{ab_label_free.HEADING[1:]}", "",
                  _markdown_table(ab_label_free.ARM_HEADER, ab_label_free.arm_rows(report)), "",
                  _markdown_table(ab_label_free.PAIR_HEADER, ab_label_free.pair_rows(report)), "",
                  f"Method: {report.label_free_method}", ""]
    if png:
        parts += [f"![accuracy and latency per arm]({png})", ""]
    return "\n".join(parts)


def draw_png(report: digits_pb2.ExperimentReport, samples: Sequence[Sample], path: Path) -> Path:
    """Accuracy with 95% intervals per arm, and the client-measured latency distribution per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    arms = list(report.arms)
    names = [a.arm for a in arms]
    accuracy = np.array([a.accuracy for a in arms]) * 100
    below = accuracy - np.array([a.accuracy_low for a in arms]) * 100
    above = np.array([a.accuracy_high for a in arms]) * 100 - accuracy
    left.bar(names, accuracy, yerr=[below, above], capsize=8, color="#4c78a8")
    for i, a in enumerate(arms):
        left.annotate(f"{a.accuracy * 100:.1f}%\nn={a.labelled}", (i, accuracy[i] + above[i]),
                      ha="center", va="bottom", fontsize=9)
    left.set_ylim(0, 110)
    left.set_ylabel("accuracy, % (95% Wilson interval)")
    left.set_title(f"{report.experiment.name}: live accuracy per arm")
    latencies = client_latencies(samples)
    if latencies:
        right.boxplot([v * 1e3 for v in latencies.values()], whis=(5, 95), showfliers=False)
        right.set_xticks(range(1, len(latencies) + 1), list(latencies))
        right.set_ylabel("latency, ms (client-measured)")
        right.set_title("latency per arm (whiskers: 5th-95th percentile)")
    else:
        right.text(0.5, 0.5, "no answered requests", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
