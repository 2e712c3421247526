"""Finding the external tools some tests drive (promtool, prometheus, docker-compose)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import pytest


def require_tool(name: str, hint: str = ".ci/run installs it") -> str:
    """The path of an executable; skips the test when it is missing, except in CI, where it fails."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed ({hint})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def wait_until_ready(name: str, process: subprocess.Popen, ready: Callable[[], bool], log: Callable[[], str],
                     stop: Callable[[], object], timeout: float, interval: float = 0.1) -> None:
    """Poll `ready()` (OSError counts as not yet) until true; RuntimeError if the process exits first,
    TimeoutError (after `stop()`) when `timeout` seconds pass. Messages carry the process's log."""
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{log()}")
        try:
            if ready():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop()
            raise TimeoutError(f"{name} not ready after {timeout}s:\n{log()}")
        time.sleep(interval)
