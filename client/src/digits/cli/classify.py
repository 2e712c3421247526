"""``digits classify FILE...``: classify .npy digits, image files and .npz test sets."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from digits import convert, imageprep
from digits.cli.common import Subparsers, UsageError, load_npz, make_client, positive_int, print_json, served_name
from digits.client import DigitsClient
from digits.errors import DigitsError, InvalidInputError
from digits.results import ClassifyResult
from digits.v1 import digits_pb2

__all__ = ["add_parser", "run"]

DEFAULT_BATCH_SIZE = 128


@dataclass
class _Single:
    """One image file or .npy digit."""

    path: str
    image: digits_pb2.Image
    preview: np.ndarray | None


@dataclass
class _Dataset:
    """A Keras-layout .npz: x_test and maybe y_test."""

    path: str
    x: np.ndarray
    y: np.ndarray | None


def add_parser(subparsers: Subparsers) -> None:
    """Register ``classify``."""
    parser = subparsers.add_parser(
        "classify",
        help="classify digits from .npy, image or .npz files",
        description=(
            "Classify each FILE: a 28x28 .npy array (sent as raw pixels), an image file "
            "(PNG, JPEG, GIF, BMP, WebP: sent encoded, the server preprocesses it), or a "
            ".npz in the Keras layout (every x_test digit, via ClassifyBatch in chunks; "
            "accuracy is reported when y_test exists)."
        ),
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help=".npy, image or .npz file")
    parser.add_argument("--model", metavar="NAME[:VERSION]|NAME@LABEL",
                        help="model selector, e.g. lstm, lstm:3, lstm@canary (default: the server's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f".npz: images per ClassifyBatch call (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--show", action="store_true",
                        help="print each digit as ASCII art (image files: a client-side preview; needs Pillow)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help=".npz: print only the summary line, not one line per digit")
    parser.set_defaults(handler=run)


def _load(path: str, show: bool) -> _Single | _Dataset:
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        x, y = load_npz(path)
        return _Dataset(path, x, y)
    if not Path(path).is_file():
        raise UsageError(f"no such file: {path}")
    try:
        image = convert.load_image_file(path)
    except InvalidInputError as exc:
        raise UsageError(exc.details) from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    preview = None
    if image.WhichOneof("data") == "encoded":
        try:
            if imageprep.have_pillow():
                imageprep.check_image_file(path)
            if show:
                preview = imageprep.preview_image_file(path)
        except (ValueError, imageprep.PillowMissing) as exc:
            raise UsageError(str(exc)) from None
    elif show:
        preview = np.load(path, allow_pickle=False)
    return _Single(path, image, preview)


def _record(name: str, index: int | None, result: ClassifyResult, true_label: int | None) -> dict[str, Any]:
    record = {"file": name, "index": index, **asdict(result), "confidence": result.confidence}
    record["probabilities"] = list(result.probabilities)
    record["true_label"] = true_label
    return record


def _line(record: dict[str, Any]) -> str:
    where = record["file"] if record["index"] is None else f"{record['file']}[{record['index']}]"
    text = (f"{where}: {record['digit']} ({record['confidence']:.3f}) "
            f"{served_name(record['model'], record['version'])}")
    if record["experiment"]:
        text += f" [{record['experiment']}/{record['arm']}]"
    truth = record["true_label"]
    if truth is not None:
        text += f" (true {truth}{'' if truth == record['digit'] else ', wrong'})"
    if record["index"] is None and record["request_id"]:  # what `digits feedback` needs
        text += f" request {record['request_id']}"
    return text


class _Printer:
    """Human output as results arrive; ASCII art to stderr when stdout carries JSON."""

    def __init__(self, as_json: bool, show: bool, quiet: bool) -> None:
        self.as_json, self.show, self.quiet = as_json, show, quiet

    def digit(self, record: dict[str, Any], pixels: np.ndarray | None, in_dataset: bool) -> None:
        """One classified digit: its ASCII art (with --show) and its line."""
        if self.show and pixels is not None:
            print(imageprep.ascii_art(pixels), file=sys.stderr if self.as_json else sys.stdout)
        if not self.as_json and not (in_dataset and self.quiet):
            print(_line(record))

    def summary(self, summary: dict[str, Any]) -> None:
        """The closing line of an .npz: count, accuracy when labelled, what served."""
        if self.as_json:
            return
        served = ", ".join(summary["served"])
        if summary["accuracy"] is None:
            print(f"{summary['file']}: {summary['n']} digits classified ({served})")
        else:
            print(f"{summary['file']}: {summary['correct']}/{summary['n']} correct, "
                  f"accuracy {summary['accuracy']:.4f} ({served})")


def _classify_dataset(
    client: DigitsClient, data: _Dataset, args: argparse.Namespace, printer: _Printer
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    records: list[dict[str, Any]] = []
    served: Counter[str] = Counter()
    correct = 0
    for start in range(0, len(data.x), args.batch_size):
        chunk = data.x[start: start + args.batch_size]
        labels = None if data.y is None else data.y[start: start + len(chunk)]
        batch = client.classify_batch(chunk, args.model, true_labels=labels)
        if len(batch.predictions) != len(chunk):
            raise DigitsError(f"server answered {len(batch.predictions)} predictions for {len(chunk)} images")
        served[served_name(batch.model, batch.version)] += len(chunk)
        for offset, prediction in enumerate(batch.predictions):
            truth = None if labels is None else int(labels[offset])
            correct += truth == prediction.digit
            result = ClassifyResult(prediction.digit, prediction.probabilities, batch.model,
                                    batch.version, batch.experiment, batch.arm, batch.request_id)
            record = _record(data.path, start + offset, result, truth)
            records.append(record)
            printer.digit(record, chunk[offset], in_dataset=True)
    n = len(data.x)
    summary = {
        "file": data.path, "n": n,
        "correct": correct if data.y is not None else None,
        "accuracy": correct / n if data.y is not None and n else None,
        "served": dict(served),
    }
    printer.summary(summary)
    return records, summary


def run(args: argparse.Namespace) -> int:
    """Classify every FILE and print the results."""
    try:
        convert.model_spec(args.model)
    except InvalidInputError as exc:
        raise UsageError(f"--model: {exc.details}") from None
    sources = [_load(path, args.show) for path in args.files]
    printer = _Printer(args.json, args.show, args.quiet)
    results: list[dict[str, Any]] = []
    datasets: list[dict[str, Any]] = []
    with make_client(args) as client:
        for source in sources:
            if isinstance(source, _Dataset):
                records, summary = _classify_dataset(client, source, args, printer)
                results.extend(records)
                datasets.append(summary)
            else:
                result = client.classify(source.image, args.model)
                record = _record(source.path, None, result, None)
                results.append(record)
                printer.digit(record, source.preview, in_dataset=False)
        if args.json:
            print_json({"target": client.target, "results": results, "datasets": datasets})
    return 0
