"""The client installs into a fresh venv on its own (no TensorFlow) and works from there.

Not marked slow on purpose: CI must run it (about 20-60 s: venv creation plus pip).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
HEAVY = {"tensorflow", "tensorflow-cpu", "tensorflow_cpu", "keras", "tf-keras", "tensorflow-intel"}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    env["PIP_NO_INPUT"] = "1"
    return env


def _run(*argv: str | Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{argv} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh venv (no system site-packages) with only `pip install client/` (non-editable)."""
    root = tmp_path_factory.mktemp("client-only")
    source = root / "client"
    shutil.copytree(CLIENT_DIR, source,
                    ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv = root / "venv"
    _run(sys.executable, "-m", "venv", venv, cwd=root)
    config = (venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = false" in config
    _run(venv / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", source, cwd=root)
    return venv


def test_imports_without_tensorflow(client_venv, tmp_path):
    code = (
        "import sys, digits, digits.cli, digits.aio, digits.cli.evaluate, digits.cli.classify, digits.imageprep\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow was imported'\n"
        "from digits import DigitsClient, AsyncDigitsClient, ClassifyResult, BatchResult, ModelInfo, FeedbackResult\n"
        "from digits.errors import DigitsError, ModelNotFoundError, InvalidInputError, ResourceExhaustedError\n"
        "print(digits.__file__)\n"
    )
    done = _run(client_venv / "bin" / "python", "-c", code, cwd=tmp_path)
    installed_at = Path(done.stdout.strip())
    assert installed_at.is_relative_to(client_venv), f"imported from {installed_at}, not the venv"
    package = installed_at.parent
    assert (package / "py.typed").is_file() and (package / "v1" / "digits_pb2.pyi").is_file()


def test_console_script_help(client_venv, tmp_path):
    done = _run(client_venv / "bin" / "digits", "--help", cwd=tmp_path)
    assert "classify" in done.stdout and "eval" in done.stdout and "models" in done.stdout


def test_no_tensorflow_installed(client_venv, tmp_path):
    done = _run(client_venv / "bin" / "python", "-m", "pip", "list", "--format=json", cwd=tmp_path)
    names = {entry["name"].lower() for entry in json.loads(done.stdout)}
    assert {"digits-client", "grpcio", "protobuf", "numpy"} <= names
    assert not names & HEAVY, f"heavy packages in the client venv: {names & HEAVY}"
    assert not any(name.startswith("tensorflow") for name in names)
    assert "pillow" not in names  # only with the [images] extra


def test_installed_cli_talks_to_a_server(client_venv, tmp_path, fake_server, servicer):
    image = np.zeros((28, 28), np.uint8)
    image[0, 0] = 5
    np.save(tmp_path / "five.npy", image)
    done = _run(client_venv / "bin" / "digits", "classify", tmp_path / "five.npy", "--json",
                "--target", fake_server.target, cwd=tmp_path, timeout=60)
    assert json.loads(done.stdout)["results"][0]["digit"] == 5
    assert servicer.requests("Classify")[0].image.pixels == image.tobytes()


def test_show_without_pillow_says_how_to_get_it(client_venv, tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    done = subprocess.run([str(client_venv / "bin" / "digits"), "classify", str(tmp_path / "x.png"), "--show"],
                          cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "digits-client[images]" in done.stderr and "Traceback" not in done.stderr
