"""Checks a version folder passes before TensorFlow loads it.

Trust: a SavedModel is code (its graph can read and write files), so the server loads only
model folders that no other user of the machine can write to. A version is refused when the
repository root, the model folder, the version folder or anything inside it is world-writable,
unless `--allow-world-writable-models` is set. The refusal is a load failure: the version shows
FAILED with the reason and never serves.

Liveness: every file of the version is read once, in Python, before TensorFlow opens it.
TensorFlow holds the GIL while its restore op reads a file, so a read that never returns (a
hung network mount, a FIFO) would freeze the whole server, event loop included, and the load
timeout could never fire. Python releases the GIL while it waits, so a hang here blocks only
the loader thread: the manager's load timeout marks the version FAILED and serving goes on.
The read also warms the page cache for TensorFlow's own read.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

Model = TypeVar("Model")


class UntrustedModelFolder(Exception):
    """A model folder other users could have written to."""


def world_writable(version_dir: Path, root: Path) -> list[Path]:
    """Every path from `root` down to and inside `version_dir` that others may write to."""
    suspects = [version_dir, *version_dir.parents]
    chain = [p for p in suspects if p == root or root in p.parents] or [version_dir]
    for folder, dirs, files in os.walk(version_dir):
        chain += [Path(folder, name) for name in dirs + files]
    found = []
    for path in chain:
        try:
            mode = path.stat().st_mode
        except OSError:
            continue
        if mode & stat.S_IWOTH:
            found.append(path)
    return found


READ_CHUNK = 1 << 20


def read_through(version_dir: Path) -> int:
    """Read every file under `version_dir` once, discarding the bytes; returns the bytes read.
    Raises UntrustedModelFolder for anything that is not a regular file (FIFO, device, socket)."""
    total = 0
    for folder, _dirs, files in os.walk(version_dir):
        for name in files:
            with open(os.path.join(folder, name), "rb") as stream:
                while chunk := stream.read(READ_CHUNK):
                    total += len(chunk)
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    raise UntrustedModelFolder(f"refused: {os.path.join(folder, name)} is not a regular file")
    return total


def guard_loader(
    loader: Callable[[str, int, Path], Model], root: Path, allow_world_writable: bool = False
) -> Callable[[str, int, Path], Model]:
    """`loader`, refusing versions whose folders are world-writable (unless allowed) and reading
    every file once before `loader` runs (see the module docstring)."""

    def trusted_loader(name: str, version: int, path: Path) -> Model:
        exposed = world_writable(path, root)
        if exposed and not allow_world_writable:
            shown = ", ".join(str(p) for p in exposed[:3]) + (" ..." if len(exposed) > 3 else "")
            raise UntrustedModelFolder(
                f"refused: writable by other users ({shown}); a SavedModel is code — fix the permissions "
                "(chmod o-w) or start the server with --allow-world-writable-models"
            )
        if exposed:
            log.warning("loading %s version %d although other users can write to %s", name, version, exposed[0])
        read_through(path)
        return loader(name, version, path)

    return trusted_loader
