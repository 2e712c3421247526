"""The ``digits-train`` command line (see ``digits-train --help``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from .data import MNIST_SOURCE, DataError
from .model import CELLS
from .recipes import RECIPES
from .tensorflow_startup import import_tensorflow_quietly

log = logging.getLogger("digits_trainer")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``digits-train``."""
    parser = argparse.ArgumentParser(
        prog="digits-train",
        description=(
            "Train SimpleRNN/LSTM/GRU digit classifiers and export them as TensorFlow Serving "
            "SavedModels under OUT/<cell>/<version>/ with a metadata.json beside each."
        ),
    )
    parser.add_argument(
        "--cells", default=",".join(CELLS),
        help=f"comma-separated cells to train (default: {','.join(CELLS)})",
    )
    parser.add_argument(
        "--recipe", choices=sorted(RECIPES), default="seed",
        help="seed = the reference (SGD, 10 epochs); tuned = "
        "affine + elastic augmentation, cosine schedule over 70 epochs, temperature "
        "scaling when it pays (default: seed)",
    )
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's number of epochs")
    parser.add_argument(
        "--data", default=MNIST_SOURCE,
        help="a Keras-layout .npz, 'mnist' (Keras download; falls back to the shipped sample "
        "when offline), 'sample', or a server's payload log (a .jsonl file or a directory of "
        "them, from digits-server --payload-log: the labelled requests, 1 in 5 held out for "
        "testing) (default: mnist)",
    )
    parser.add_argument("--out", default="models",
                        help="model repository to export into (default: models)")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed for a reproducible run (default: drawn and recorded)")
    parser.add_argument("--train-limit", type=int, default=None, metavar="N",
                        help="train on the first N training digits only")
    parser.add_argument("--test-limit", type=int, default=None, metavar="N",
                        help="measure on the first N test digits only")
    parser.add_argument("--validation-split", type=float, default=None, metavar="F",
                        help="fraction of training digits held out for validation "
                        "(overrides the recipe; 0 = monitor on the test split)")
    parser.add_argument("--no-plot", action="store_true",
                        help="do not write the training-curves PNG")
    parser.add_argument("--quiet", action="store_true",
                        help="print nothing but warnings and errors")
    return parser


def _configure_logging(quiet: bool) -> None:
    """Log to stderr: INFO and up normally, WARNING and up with ``--quiet``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("digits-train: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``digits-train``; returns the process exit code (0 ok, 1 failure, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("epochs", "train_limit", "test_limit"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer")
    # TensorFlow's C++ INFO chatter (oneDNN notices...) is noise here; warnings still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    _configure_logging(args.quiet)
    import_tensorflow_quietly()

    from .api import parse_cells, train
    from .report import format_table

    try:
        cells = parse_cells(args.cells)
    except ValueError as error:
        parser.error(str(error))
    try:
        results = train(
            cells, args.recipe, epochs=args.epochs, data=args.data, out=args.out,
            seed=args.seed, train_limit=args.train_limit, test_limit=args.test_limit,
            validation_split=args.validation_split, plot=not args.no_plot, quiet=args.quiet,
        )
    except (DataError, ValueError) as error:
        log.error("%s", error)
        return 1
    if not args.quiet:
        print()
        print(format_table([result.metadata for result in results]))
        if results and results[0].curves is not None:
            print(f"\ntraining curves: {results[0].curves}")
        if results and results[0].reliability is not None:
            print(f"reliability diagrams: {results[0].reliability}")
        print(f"models: {os.path.abspath(args.out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
