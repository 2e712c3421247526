"""The model *source*: which versions exist on disk and which of them should be served.

It only declares; the manager loads and unloads. Layout (TensorFlow Serving's):
`<root>/<model>/<version>/saved_model.pb`, version a positive integer. Folders with other
names (such as the trainer's `.tmp-*` folders, renamed atomically when complete) are ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

SAVED_MODEL_FILE = "saved_model.pb"


@dataclass(frozen=True)
class VersionPolicy:
    """Which versions of a model to serve: the newest `count`, all of them, or a fixed list."""

    kind: Literal["latest", "all", "specific"] = "latest"
    count: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: list[int]) -> set[int]:
        """The versions to serve out of those on disk."""
        ordered = sorted(available, reverse=True)
        if self.kind == "all":
            return set(ordered)
        if self.kind == "specific":
            return set(self.versions) & set(ordered)
        return set(ordered[: max(self.count, 1)])


def scan(root: Path) -> dict[str, dict[int, Path]]:
    """Every complete version under `root`: {model name: {version: folder}}."""
    found: dict[str, dict[int, Path]] = {}
    if not root.is_dir():
        log.warning("model repository %s does not exist", root)
        return found
    try:
        model_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:  # deleted or unreadable while being scanned
        log.warning("model repository %s cannot be scanned: %s", root, exc)
        return found
    for model_dir in model_dirs:
        versions: dict[int, Path] = {}
        try:
            for version_dir in model_dir.iterdir():
                if version_dir.name.isdigit() and int(version_dir.name) > 0 and version_dir.is_dir():
                    if (version_dir / SAVED_MODEL_FILE).is_file():
                        versions[int(version_dir.name)] = version_dir
        except OSError as exc:  # a model folder removed while being scanned: as if it were gone
            log.warning("model folder %s cannot be scanned: %s", model_dir, exc)
            continue
        if versions:
            found[model_dir.name] = versions
    return found


def fingerprint(version_dir: Path) -> tuple[int, int, int]:
    """Identity of a version's SavedModel file (inode, size, mtime): a FAILED version is retried when it changes."""
    try:
        stat = (version_dir / SAVED_MODEL_FILE).stat()
    except OSError:
        return (0, 0, 0)
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ModelSource:
    """Scans the repository and applies each model's version policy (default: latest 1).

    Versions that a label points at are wanted too, whatever the policy, so that
    `canary: 3` is enough to serve version 3 under its label. `root` is public so the manager
    can look at every version on disk when all wanted ones fail (its fallback).
    """

    def __init__(
        self,
        root: Path,
        policies: dict[str, VersionPolicy] | None = None,
        labels: dict[str, dict[str, int]] | None = None,
    ) -> None:
        self.root = root
        self.policies = dict(policies or {})
        self.labels = {name: dict(mapping) for name, mapping in (labels or {}).items()}

    def desired(self) -> dict[str, dict[int, Path]]:
        """{model: {version: folder}} that should be loaded now."""
        return self.select(scan(self.root))

    def select(self, on_disk: dict[str, dict[int, Path]]) -> dict[str, dict[int, Path]]:
        """The versions out of `on_disk` (a `scan` result) that policies and labels want."""
        wanted: dict[str, dict[int, Path]] = {}
        for name, versions in on_disk.items():
            policy = self.policies.get(name, VersionPolicy())
            keep = policy.select(list(versions)) | set(self.labels.get(name, {}).values())
            wanted[name] = {v: p for v, p in versions.items() if v in keep}
        return wanted
