"""The ``digits`` command line: entry point, parser assembly and error handling.

Each subcommand lives in its own module of this package exposing ``add_parser(subparsers)``,
which registers the subcommand with ``handler=<function(args) -> exit code>``. To add one,
write the module and list it in :data:`COMMANDS`.

Exit codes: 0 success, 1 server error (``error: <CODE>: <details>`` on stderr), 2 usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from types import ModuleType

from digits import __version__
from digits.cli import ab, bench, classify, evaluate, feedback, models, monitor
from digits.cli.common import UsageError, add_connection_options, global_options, subcommand_parsers
from digits.errors import DigitsError

__all__ = ["COMMANDS", "build_parser", "main"]

#: Subcommand modules, in help order; each exposes ``add_parser(subparsers)``.
COMMANDS: tuple[ModuleType, ...] = (classify, evaluate, models, monitor, feedback, ab, bench)

EXIT_OK, EXIT_SERVER_ERROR, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    """The full parser: global connection flags plus every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="digits",
        parents=[global_options()],
        allow_abbrev=False,
        description="Client for the digits gRPC server: classify handwritten digits with "
                    "RNN/LSTM/GRU models, evaluate them, and manage the server.",
        epilog="Connection flags work before or after the subcommand. The token is never a "
               "flag value: use --token-file or the DIGITS_TOKEN environment variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.add_parser(subparsers)
    for subparser in subcommand_parsers(parser):  # every subcommand, at every depth
        add_connection_options(subparser)
        # No prefix matching: "--token SECRET" must not be taken for "--token-file SECRET".
        subparser.allow_abbrev = False
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or argparse's own usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DigitsError as exc:
        print(f"error: {exc.code.name}: {exc.details}", file=sys.stderr)
        return EXIT_SERVER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `digits classify x.npz | head`
        sys.stderr.close()
        return EXIT_OK
