"""``digits feedback REQUEST_ID DIGIT``: tell the server the true digit of a prediction."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from digits.cli.common import Subparsers, make_client, print_json, served_name

__all__ = ["add_parser", "run"]


def _digit(text: str) -> int:
    if text not in {str(d) for d in range(10)}:
        raise argparse.ArgumentTypeError(f"a digit 0..9, got {text!r}")
    return int(text)


def _index(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a whole number >= 0, got {text!r}")
    return int(text)


def add_parser(subparsers: Subparsers) -> None:
    """Register ``feedback``."""
    parser = subparsers.add_parser(
        "feedback",
        help="report the true digit of an earlier prediction",
        description="Send the true DIGIT of the prediction made for REQUEST_ID (printed by "
                    "'digits classify --json'); the server counts it in the live accuracy of "
                    "the model version that served it.",
    )
    parser.add_argument("request_id", metavar="REQUEST_ID")
    parser.add_argument("digit", type=_digit, metavar="DIGIT", help="the true digit, 0..9")
    parser.add_argument("--index", type=_index, default=0, metavar="I",
                        help="which image of a ClassifyBatch request (default 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Send the feedback and print whether the prediction was right."""
    with make_client(args) as client:
        result = client.feedback(args.request_id, args.digit, args.index)
    if args.json:
        print_json({"request_id": args.request_id, "index": args.index, "true_label": args.digit,
                    **asdict(result)})
    else:
        verdict = "correct" if result.correct else "wrong"
        print(f"{verdict}: {served_name(result.model, result.version)} predicted {result.predicted}, "
              f"true digit {args.digit}")
    return 0
