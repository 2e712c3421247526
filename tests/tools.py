"""Finding the external tools some tests drive (promtool, prometheus, docker-compose)."""

from __future__ import annotations

import os
import shutil

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
