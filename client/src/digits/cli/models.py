"""``digits models [NAME]`` and ``digits reload``: what the server serves."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from digits.cli.common import Subparsers, make_client, print_json
from digits.results import ModelInfo

__all__ = ["add_parser", "format_models", "run_models", "run_reload"]

_HEADER = ("MODEL", "VERSION", "STATE", "LABELS", "TEST ACC", "ECE", "CELL", "RECIPE", "PARAMS", "RUNTIME", "REFERENCE")


def add_parser(subparsers: Subparsers) -> None:
    """Register ``models`` and ``reload``."""
    models = subparsers.add_parser(
        "models",
        help="list models, versions, states and labels",
        description="List the models the server knows: versions (newest first), state, labels, "
                    "offline test accuracy; '*' marks the default model.",
    )
    models.add_argument("name", nargs="?", help="only this model (GetModelStatus)")
    models.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    models.set_defaults(handler=run_models)

    reload = subparsers.add_parser(
        "reload",
        help="admin: rescan the model folder now",
        description="Ask the server to rescan its model folder and load/unload versions now "
                    "(needs the admin scope when tokens are set); prints the models afterwards.",
    )
    reload.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    reload.set_defaults(handler=run_reload)


def format_models(models: list[ModelInfo]) -> str:
    """The models as an aligned text table, failed versions' errors below their row."""
    rows: list[tuple[str, ...]] = [_HEADER]
    notes: dict[int, str] = {}
    for model in models:
        name = model.name + ("*" if model.is_default else "")
        if not model.versions:
            rows.append((name, "-", "NO VERSIONS", "", "", "", "", "", "", "", ""))
        for v in model.versions:
            rows.append((
                name, str(v.version), v.state, ",".join(v.labels) or "-",
                f"{v.test_accuracy:.4f}" if v.test_accuracy else "-",
                f"{v.test_ece:.4f}" if v.test_ece else "-",
                v.cell or "-", v.recipe or "-", f"{v.parameters:,}" if v.parameters else "-",
                v.runtime or "-", v.reference or "-",
            ))
            if v.error:
                notes[len(rows) - 1] = v.error
    widths = [max(len(row[i]) for row in rows) for i in range(len(_HEADER))]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if index in notes:
            lines.append(f"    error: {notes[index]}")
    if any(m.is_default for m in models):
        lines.append("* default model (serves requests that name no model)")
    if not models:
        lines = ["no models"]
    return "\n".join(lines)


def _output(models: list[ModelInfo], as_json: bool) -> None:
    if as_json:
        print_json({"models": [asdict(m) for m in models]})
    else:
        print(format_models(models))


def run_models(args: argparse.Namespace) -> int:
    """List the models (or one model)."""
    with make_client(args) as client:
        models = [client.model_status(args.name)] if args.name else client.list_models()
    _output(models, args.json)
    return 0


def run_reload(args: argparse.Namespace) -> int:
    """Trigger a reload and list the models afterwards."""
    with make_client(args) as client:
        models = client.reload_models()
    _output(models, args.json)
    return 0
