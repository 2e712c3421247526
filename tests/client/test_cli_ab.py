"""`digits ab` pieces that need no server: the --arm syntax and the report's text and Markdown.
(The commands against a real server: tests/server/test_ab_end_to_end.py.)"""

from __future__ import annotations

import pytest

from digits import cli
from digits.cli import ab_output
from digits.cli.ab import parse_arm
from digits.cli.common import UsageError
from digits.experiments.replay import Replay, Sample
from digits.v1 import digits_pb2 as pb


@pytest.mark.parametrize(
    ("text", "arm"),
    [
        ("lstm", ("lstm", "lstm", 1.0)),
        ("lstm=50", ("lstm", "lstm", 50.0)),
        ("gru:1=0.5", ("gru:1", "gru:1", 0.5)),
        ("canary=lstm@canary=10", ("canary", "lstm@canary", 10.0)),
        ("old=lstm:1", ("old", "lstm:1", 1.0)),
    ],
)
def test_arm_syntax(text: str, arm: tuple[str, str, float]) -> None:
    assert parse_arm(text) == arm


@pytest.mark.parametrize("text", ["", "=5", "a=b=c=1", "a==1"])
def test_bad_arm_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--arm"):
        parse_arm(text)


def test_ab_run_requires_data_and_experiment(capsys) -> None:
    assert cli.main(["ab", "run", "--data", "x.npz"]) == 2
    assert "--experiment" in capsys.readouterr().err
    assert cli.main(["ab", "run", "--data", "x.npz", "--experiment", "e", "--count", "5", "--duration", "3"]) == 2


REPORT = pb.ExperimentReport(
    experiment=pb.Experiment(name="cells", shadow_percent=20, arms=[
        pb.Arm(name="gru", model=pb.ModelSpec(name="gru"), weight=50),
        pb.Arm(name="lstm", model=pb.ModelSpec(name="lstm", version=2), weight=50)]),
    arms=[
        pb.ArmReport(arm="gru", model="gru", version=1, requests=300, errors=3, error_rate=0.01, labelled=297,
                     correct=90, accuracy=90 / 297, accuracy_low=0.25, accuracy_high=0.36, latency_p50_seconds=0.002,
                     latency_p95_seconds=0.004, latency_p99_seconds=0.0061),
        pb.ArmReport(arm="lstm", model="lstm", version=2, requests=300, labelled=300, correct=240, accuracy=0.8,
                     accuracy_low=0.75, accuracy_high=0.84),
    ],
    pairs=[pb.PairReport(arm_a="gru", arm_b="lstm", accuracy_difference=-0.497, difference_low=-0.56,
                         difference_high=-0.43, z_test_p_value=1e-9, both_right=20, only_a_right=2, only_b_right=40,
                         both_wrong=10, mcnemar_p_value=1e-8, shadow_agree=30, shadow_disagree=42,
                         verdict="lstm beats gru by 49.7 points, p < 0.001 (z-test)")],
    latency_source="server histogram",
)


def test_text_report() -> None:
    run = Replay([Sample("gru", "gru", 1, 0.003, True), Sample("lstm", "lstm", 2, 0.004, False),
                  Sample("", "", 0, 0.001, None, "UNAVAILABLE")], seconds=2.0, rate=1.5, keys=10)
    text = ab_output.render_text(REPORT, run)
    assert text.splitlines()[0] == "experiment cells (running; weights gru=50, lstm=50; shadow 20%)"
    assert "sent 3 requests in 2.0 s (1.5/s offered, 2/s answered), 10 routing keys, 1 failed" in text
    assert "client-measured latency of gru: p50 3.00 ms" in text
    gru_row = next(line for line in text.splitlines() if line.startswith("gru "))
    assert gru_row.split() == ["gru", "gru:1", "300", "1.0%", "297", "30.3%", "[25.0%,", "36.0%]", "2.00", "4.00",
                               "6.10"]
    pair_row = next(line for line in text.splitlines() if line.startswith("gru vs lstm"))
    assert "-49.7" in pair_row and "<0.001" in pair_row and "72" in pair_row and "41.7%" in pair_row
    assert pair_row.endswith("lstm beats gru by 49.7 points, p < 0.001 (z-test)")


def test_markdown_report() -> None:
    markdown = ab_output.render_markdown(REPORT, None, "ab-report.png")
    assert markdown.startswith("# A/B report: cells")
    assert "`lstm` = lstm:2 (weight 50)" in markdown
    assert "- **gru vs lstm**: lstm beats gru by 49.7 points, p < 0.001 (z-test)" in markdown
    assert "| gru | gru:1 | 300 | 1.0% | 297 | 30.3% | [25.0%, 36.0%] | 2.00 | 4.00 | 6.10 |" in markdown
    assert "![accuracy and latency per arm](ab-report.png)" in markdown


def test_png_report(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    samples = [Sample("gru", "gru", 1, 0.002 + i * 1e-4, True) for i in range(50)]
    path = ab_output.draw_png(REPORT, samples, tmp_path / "ab-report.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The fields of a pair that are neither kind of statistic: names, counts, the chosen verdict and its basis.
PAIR_INPUTS = {"arm_a", "arm_b", "both_right", "only_a_right", "only_b_right", "both_wrong", "shadow_agree",
               "shadow_disagree", "verdict", "verdict_basis"}


def test_json_figures_say_which_fields_are_fixed_horizon_and_which_always_valid() -> None:
    assert ab_output.figures(REPORT) == {}  # no always-valid results (an older server): nothing to say
    report = pb.ExperimentReport()
    report.CopyFrom(REPORT)
    report.pairs[0].verdict_basis = "always-valid"
    figures = ab_output.figures(report)["figures"]
    assert figures["verdict"] == "always-valid"
    fixed, always = set(figures["fixed-horizon"]["fields"]), set(figures["always-valid"]["fields"])
    estimated = set(figures["estimated, no labels"]["fields"])
    assert not fixed & always and "once" in figures["fixed-horizon"]["valid"]
    assert not estimated & (fixed | always) and "never in a verdict" in figures["estimated, no labels"]["valid"]
    assert "every look" in figures["always-valid"]["valid"]
    messages = {"arms": pb.ArmReport, "pairs": pb.PairReport}
    for path in (fixed | always | estimated) - {"guardrails", "label_free_method"}:
        message, name = path.split(".")
        assert name in messages[message].DESCRIPTOR.fields_by_name, path
    pair_fields = {path.split(".")[1] for path in fixed | always | estimated if path.startswith("pairs.")}
    assert pair_fields | PAIR_INPUTS == set(pb.PairReport.DESCRIPTOR.fields_by_name)  # every statistic classified
    assert all(f.startswith("estimated") or f.startswith("shadow_agreement") or f == "estimate_basis"
               for f in (path.split(".")[-1] for path in estimated) if f != "label_free_method")


def test_text_report_heads_each_kind_of_statistic() -> None:
    report = pb.ExperimentReport()
    report.CopyFrom(REPORT)
    pair = report.pairs[0]
    pair.verdict_basis, pair.fixed_horizon_verdict = "always-valid", pair.verdict
    pair.verdict = "lstm beats gru: a - b in [-60.0, -40.0] points, always-valid p < 0.001 (Holm-adjusted, mSPRT)"
    pair.always_valid_test, pair.sequence_low, pair.sequence_high, pair.sequence_confidence = "mSPRT", -0.6, -0.4, 0.95
    lines = ab_output.render_text(report).splitlines()
    fixed = lines.index("fixed-horizon (valid for one look at a planned sample size):")
    always = lines.index("always-valid (valid at every look; the verdicts rest on the always-valid tests):")
    assert fixed < always
    assert lines[fixed + 2].endswith("lstm beats gru by 49.7 points, p < 0.001 (z-test)")
    assert "[-60.0, -40.0] (95.0%)" in lines[always + 2] and lines[always + 2].endswith(pair.verdict)
