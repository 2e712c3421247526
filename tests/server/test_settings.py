"""Settings: flags, DIGITS_SERVER_* variables and the --config file, in that order; --help documents all."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from digits_server.settings import Settings
from tests.serverproc import source_env


def test_flags_win_over_the_environment_which_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "server.yaml"
    config.write_text("max_batch_size: 16\nbatch-timeout-us: 900\npoll_seconds: 2\nbatching: false\nmodels: /srv/m\n")
    settings = Settings.from_args(
        ["--config", str(config), "--max-batch-size", "8"], environ={"DIGITS_SERVER_POLL_SECONDS": "7"}
    )
    assert settings.max_batch_size == 8  # flag
    assert settings.poll_seconds == 7.0  # environment
    assert settings.batch_timeout_us == 900 and settings.batching is False and settings.models == Path("/srv/m")
    assert settings.max_queued == Settings().max_queued  # default


def test_the_config_file_can_come_from_the_environment_and_unknown_keys_are_refused(tmp_path: Path, capsys) -> None:
    config = tmp_path / "server.json"
    config.write_text('{"grace_seconds": 3}')
    assert Settings.from_args([], environ={"DIGITS_SERVER_CONFIG": str(config)}).grace_seconds == 3.0
    config.write_text('{"max_bach_size": 3}')
    with pytest.raises(SystemExit):
        Settings.from_args(["--config", str(config)], environ={})
    assert "unknown setting 'max_bach_size'" in capsys.readouterr().err


def test_help_documents_every_setting() -> None:
    completed = subprocess.run([sys.executable, "-m", "digits_server", "--help"], capture_output=True, text=True,
                               env=source_env(), timeout=60)
    assert completed.returncode == 0
    text = " ".join(completed.stdout.split())
    for f in dataclasses.fields(Settings):
        assert "--" + f.name.replace("_", "-") in text and "DIGITS_SERVER_" + f.name.upper() in text


def test_batching_options_defaults_are_the_settings_defaults() -> None:
    """BatchingOptions() (used by tests and embedders) is what a server with default settings runs
    (the options once said batch_timeout=0.0005 while the setting said 0). Core keeps its own
    defaults, since it imports nothing above core; this keeps the two equal."""
    from digits_server.app import batching_options
    from digits_server.core.batching import BatchingOptions

    assert BatchingOptions() == batching_options(Settings())
    assert BatchingOptions().batch_timeout == 0
