"""The model source's scan of the repository folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from digits_server.core import repository


def make_version(root: Path, model: str, version: str) -> Path:
    folder = root / model / version
    folder.mkdir(parents=True)
    (folder / repository.SAVED_MODEL_FILE).write_bytes(b"graph")
    return folder


def test_scan_finds_complete_versions_only(tmp_path: Path) -> None:
    make_version(tmp_path, "lstm", "1")
    make_version(tmp_path, "lstm", "3")
    make_version(tmp_path, "lstm", ".tmp-4-abc")  # being written by the trainer
    (tmp_path / "lstm" / "5").mkdir()  # no saved_model.pb yet
    make_version(tmp_path, "lstm", "0")
    assert {name: sorted(v) for name, v in repository.scan(tmp_path).items()} == {"lstm": [1, 3]}


def test_a_folder_vanishing_during_a_scan_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_version(tmp_path, "lstm", "1")
    (tmp_path / "gone").mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self: Path):
        if self.name == "gone":
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert set(repository.scan(tmp_path)) == {"lstm"}


def test_a_repository_that_is_not_there_scans_empty(tmp_path: Path) -> None:
    assert repository.scan(tmp_path / "absent") == {}
