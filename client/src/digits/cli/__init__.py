"""The ``digits`` command line: one module per subcommand, assembled by `main`."""

from digits.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
