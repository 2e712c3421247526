"""Run a script of tests/ecosystem/ in the ecosystem venv and return the JSON document it prints."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
VENV = Path(os.environ.get("DIGITS_ECOSYSTEM_VENV", REPO / ".venv-ecosystem"))
KSERVE_REFERENCE = VENV / "reference"


def python() -> Path:
    """The venv's interpreter; fails the test (not skips) when the venv was never made."""
    interpreter = VENV / "bin" / "python"
    if not (VENV / ".installed").exists() or not interpreter.exists():
        pytest.fail(f"no ecosystem venv at {VENV}: run `make setup-ecosystem` (tests/ecosystem/setup.sh)")
    return interpreter


def site_packages() -> Path:
    """The venv's site-packages folder (call python() first: it fails when there is no venv)."""
    found = sorted((VENV / "lib").glob("python3*/site-packages"))
    assert found, f"no site-packages under {VENV / 'lib'}"
    return found[0]


def clean_env() -> dict[str, str]:
    """The environment for the venv's python: none of this checkout's code on the path, quiet TF."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def run_script(name: str, payload: dict | None = None, timeout: float = 300.0, code: str | None = None) -> dict:
    """Run tests/ecosystem/NAME (or the source `code`) with `payload` as JSON on stdin; its last stdout line is JSON."""
    args = [str(python()), "-c", code] if code is not None else [str(python()), str(HERE / name)]
    proc = subprocess.run(
        args, input=json.dumps(payload or {}), capture_output=True, text=True, timeout=timeout, env=clean_env(),
        cwd=HERE,
    )
    if proc.returncode != 0:
        raise AssertionError(f"{name} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"{name} printed nothing:\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])


#: The page whose `<!-- snippet: NAME -->` blocks the protocol tests run.
SNIPPETS = REPO / "docs" / "protocols.md"


def readme_snippet(name: str, target: str) -> str:
    """The Python block after `<!-- snippet: NAME -->` in docs/protocols.md, pointed at `target`."""
    text = SNIPPETS.read_text()
    marker = f"<!-- snippet: {name} -->\n```python\n"
    assert marker in text, f"{SNIPPETS.relative_to(REPO)} has no snippet {name!r}"
    code = text.split(marker, 1)[1].split("```", 1)[0]
    assert "localhost:50051" in code, f"snippet {name!r} does not name localhost:50051"
    return code.replace("localhost:50051", target)


def run_code(code: str, timeout: float = 300.0) -> str:
    """Run Python source in the venv; returns its stdout, fails with its stderr."""
    proc = subprocess.run(
        [str(python()), "-c", code], capture_output=True, text=True, timeout=timeout, env=clean_env(), cwd=HERE
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    return proc.stdout
