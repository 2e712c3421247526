"""`digits-server`: parse settings, configure logging, run the server."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

from digits_server.core.errors import ConfigurationError
from digits_server.core.litert_model import check_installed
from digits_server.core.loaded_model import check_runtime
from digits_server.core.runtimes import parse_buckets
from digits_server.settings import Settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `digits-server` console script."""
    settings = Settings.from_args(argv)
    try:
        check_installed(check_runtime(settings.runtime))
        parse_buckets(settings.xla_buckets)
    except ValueError as exc:
        print(f"digits-server: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from digits_server.app import run

    try:
        asyncio.run(run(settings))
    except (OSError, ConfigurationError) as exc:
        print(f"digits-server: {exc}", file=sys.stderr)
        return 1
    return 0
