"""``digits monitor``: label-free monitoring per model version (docs/monitoring.md).

    digits monitor [MODEL] [--json] [--prometheus URL]

One server: its status RPC (this replica's figures). ``--prometheus``: the fleet's counters
summed in PromQL, alarms from any replica.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict

from digits.cli.common import Subparsers, UsageError, make_client, print_json
from digits.monitoring.report import VersionReport, from_prometheus

_HEADER = ("MODEL", "VERSION", "PREDICTIONS", "ESTIMATED ACC (95%)", "LABELLED ACC (95%)", "REF ACC", "DRIFT")


def add_parser(subparsers: Subparsers) -> None:
    """Register `digits monitor`."""
    parser = subparsers.add_parser(
        "monitor", help="estimated accuracy without labels and drift alarms, per model version",
        description="Per model version: predictions watched, accuracy estimated without labels (CBPE, "
                    "assumes calibration holds: read it with the drift column), labelled accuracy where "
                    "labels exist, and the drift detectors that fired with the bin that moved.",
    )
    parser.add_argument("name", nargs="?", help="only this model")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--prometheus", metavar="URL",
                        help="the fleet's figures from Prometheus at URL (http://host:9090): counters summed "
                             "over replicas, alarms from any")
    parser.set_defaults(handler=run_monitor)


def _interval(value: float | None, interval: tuple[float, float] | None) -> str:
    if value is None or interval is None:
        return "-"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def format_reports(reports: list[VersionReport]) -> str:
    """An aligned table, each alarm's detail below its row."""
    rows, notes = [_HEADER], {}
    for r in reports:
        if not r.has_reference:
            rows.append((r.model, str(r.version), "-", "no reference", "-", "-", "-"))
            if r.reference_error:
                notes[len(rows) - 1] = [f"reference: {r.reference_error}"]
            continue
        rows.append((
            r.model, str(r.version), f"{r.predictions:,}", _interval(r.estimated, r.estimated_interval),
            _interval(r.labelled_accuracy, r.labelled_interval) + (f" n={r.labelled}" if r.labelled else ""),
            f"{r.reference_accuracy:.3f}", ", ".join(r.drifting) or "none",
        ))
        details = [f"drift: {s.signal}: fired {s.alarms}x" + (f"; moved {s.moved}" if s.moved else "")
                   for s in r.signals if s.alarm]
        if r.calibration_drift:
            details.append("calibration drift: estimated and labelled accuracy disagree")
        if details:
            notes[len(rows) - 1] = details
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        lines += [f"    {note}" for note in notes.get(index, [])]
    if len(rows) == 1:
        return "no monitored versions (monitoring off, or no models)"
    return "\n".join(lines + ["estimated accuracy assumes calibration holds: read it with the DRIFT column"])


def run_monitor(args: argparse.Namespace) -> int:
    """Print the monitoring of every version (or one model's)."""
    if args.prometheus:
        from digits.experiments.fleet_report import PrometheusError, prometheus_query

        try:
            reports = from_prometheus(prometheus_query(args.prometheus), args.name)
        except PrometheusError as exc:
            raise UsageError(str(exc)) from None
    else:
        with make_client(args) as client:
            reports = client.monitoring(args.name)
    if args.json:
        print_json({"versions": [{**asdict(r), "drifting": r.drifting, "calibration_drift": r.calibration_drift}
                                 for r in reports]})
    else:
        print(format_reports(reports))
    return 0
