"""Checks a version folder passes before TensorFlow loads it.

Trust: a SavedModel is code (its graph can read and write files), so the server loads only
model folders that no other user of the machine can write to. A version is refused when the
repository root, the model folder, the version folder or anything inside it is writable by
other users, that is group-writable or world-writable, unless `--allow-world-writable-models`
is set (the flag allows both). Inside the version folder only regular files and folders are
accepted: a symlink, FIFO, device or socket is refused, found by `lstat` before any file is
opened. A refusal is a load failure: the version shows FAILED with the reason and never serves.

Liveness: every file of the version is read once, in Python, before TensorFlow opens it.
TensorFlow holds the GIL while its restore op reads a file, so a read that never returns (a
hung network mount) would freeze the whole server, event loop included, and the load timeout
could never fire. Python releases the GIL while it waits, so a hang here blocks only the
loader thread: the manager's load timeout marks the version FAILED and serving goes on.
The read also warms the page cache for TensorFlow's own read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

log = logging.getLogger(__name__)

Model = TypeVar("Model")


class UntrustedModelFolder(Exception):
    """A model folder other users could have written to, or one holding something else than files and folders."""


#: Write permission for the owner's group or for everyone: "writable by other users".
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def writable_by_others(version_dir: Path, root: Path) -> list[Path]:
    """Every path from `root` down to and inside `version_dir` that its group or everyone may write to."""
    suspects = [version_dir, *version_dir.parents]
    modes = []
    for path in [p for p in suspects if p == root or root in p.parents] or [version_dir]:
        with contextlib.suppress(OSError):
            modes.append((path, path.stat().st_mode))
    for folder, dirs, files in os.walk(version_dir):
        for name in dirs + files:
            with contextlib.suppress(OSError):  # lstat: a symlink is refused by not_regular, not followed
                modes.append((Path(folder, name), Path(folder, name).lstat().st_mode))
    return [path for path, mode in modes if not stat.S_ISLNK(mode) and mode & OTHERS_WRITE]


def not_regular(version_dir: Path) -> list[Path]:
    """Every entry inside `version_dir` that is neither a regular file nor a folder (by lstat: a
    symlink counts as one, whatever it points to). Nothing is opened."""
    found = []
    for folder, dirs, files in os.walk(version_dir):
        for name in dirs + files:
            path = Path(folder, name)
            mode = path.lstat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                found.append(path)
    return found


READ_CHUNK = 1 << 20


def read_through(version_dir: Path) -> int:
    """Read every file under `version_dir` once, discarding the bytes; returns the bytes read.

    Raises UntrustedModelFolder for anything that is not a regular file, checked before reading:
    each file is opened without following symlinks and without blocking (a FIFO with no writer
    would block `open` itself), and its type is checked on the open descriptor.
    """
    total = 0
    for folder, _dirs, files in os.walk(version_dir):
        for name in files:
            path = os.path.join(folder, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError as exc:  # ELOOP: a symlink
                raise UntrustedModelFolder(f"refused: {path} is not a regular file ({exc.strerror})") from None
            with open(fd, "rb") as stream:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise UntrustedModelFolder(f"refused: {path} is not a regular file")
                while chunk := stream.read(READ_CHUNK):
                    total += len(chunk)
    return total


def _shown(paths: list[Path]) -> str:
    return ", ".join(str(p) for p in paths[:3]) + (" ..." if len(paths) > 3 else "")


def guard_loader(
    loader: Callable[[str, int, Path], Model], root: Path, allow_world_writable: bool = False
) -> Callable[[str, int, Path], Model]:
    """`loader`, refusing versions other users can write to (unless allowed) or that hold anything
    but regular files and folders, and reading every file once before `loader` runs (see the
    module docstring)."""

    def trusted_loader(name: str, version: int, path: Path) -> Model:
        odd = not_regular(path)
        if odd:
            raise UntrustedModelFolder(
                f"refused: not a regular file or folder ({_shown(odd)}); a version holds only files and folders"
            )
        exposed = writable_by_others(path, root)
        if exposed and not allow_world_writable:
            raise UntrustedModelFolder(
                f"refused: writable by other users ({_shown(exposed)}); a SavedModel is code — fix the "
                "permissions (chmod go-w) or start the server with --allow-world-writable-models"
            )
        if exposed:
            log.warning("loading %s version %d although other users can write to %s", name, version, exposed[0])
        read_through(path)
        return loader(name, version, path)

    return trusted_loader
