"""Loading the training data: a Keras-layout ``.npz``, Keras' MNIST, the shipped sample, or a
server's payload log (``payload_logs``: logged traffic with its feedback labels).

Every source ends up as a :class:`Dataset` of uint8 images ``[N, 28, 28]`` and integer labels.
``mnist`` downloads through ``keras.datasets.mnist.load_data`` (cached in ``$KERAS_HOME``); when
that is impossible (no network) the shipped real-MNIST sample is used instead and a warning says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import payload_logs

log = logging.getLogger(__name__)

#: The real-MNIST sample shipped inside the package (a copy of ``shared/data/mnist-9k.npz``).
SAMPLE_PATH: Path = Path(__file__).resolve().parent / "data" / "mnist-sample.npz"

#: Names accepted by ``--data`` besides a path.
MNIST_SOURCE = "mnist"
SAMPLE_SOURCE = "sample"

#: Socket timeout (seconds) while trying to download MNIST, so the offline fallback is fast.
DOWNLOAD_TIMEOUT = 5.0

_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(ValueError):
    """Raised when a data source is missing or not in the Keras MNIST layout."""


@dataclass(frozen=True)
class Dataset:
    """Train and test splits in the Keras MNIST layout, plus where they came from.

    ``source`` is ``"mnist"``, ``"sample"`` or the ``.npz`` path; ``path`` is the file actually
    read (``None`` for Keras' loader); ``fell_back`` is true when ``mnist`` was asked for but the
    shipped sample was used because the download failed.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    path: str | None = None
    fell_back: bool = False
    train_limit: int | None = field(default=None)
    test_limit: int | None = field(default=None)

    @property
    def n_train(self) -> int:
        """Number of training digits."""
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        """Number of test digits."""
        return int(self.x_test.shape[0])

    def fingerprint(self) -> str:
        """Return ``sha256:<hex>`` over the four arrays (name, dtype, shape and bytes, in order)."""
        return fingerprint_arrays(
            {name: getattr(self, name) for name in _ARRAYS}
        )

    def limited(self, train_limit: int | None = None, test_limit: int | None = None) -> Dataset:
        """Return a copy keeping only the first ``train_limit`` / ``test_limit`` digits."""
        for name, value in (("train_limit", train_limit), ("test_limit", test_limit)):
            if value is not None and value < 1:
                raise DataError(f"{name} must be a positive integer, got {value}")
        return Dataset(
            x_train=self.x_train[:train_limit],
            y_train=self.y_train[:train_limit],
            x_test=self.x_test[:test_limit],
            y_test=self.y_test[:test_limit],
            source=self.source,
            path=self.path,
            fell_back=self.fell_back,
            train_limit=train_limit,
            test_limit=test_limit,
        )


def fingerprint_arrays(arrays: dict[str, np.ndarray]) -> str:
    """Hash named arrays deterministically: ``"sha256:" + hex``.

    For each name in sorted order (``x_test, x_train, y_test, y_train``) the digest is fed
    ``f"{name}|{array.dtype.str}|{array.shape}|"`` (UTF-8) followed by the C-order bytes.
    """
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return "sha256:" + digest.hexdigest()


def _validated(arrays: dict[str, np.ndarray], origin: str) -> dict[str, np.ndarray]:
    """Check shapes, dtypes and label range; return uint8 images and the labels as stored."""
    missing = [name for name in _ARRAYS if name not in arrays]
    if missing:
        raise DataError(f"{origin}: missing array(s) {missing}; expected {list(_ARRAYS)}")
    out: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{origin}: x_{split} has shape {x.shape}, expected [N, 28, 28]")
        if x.dtype != np.uint8:
            if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 255:
                raise DataError(f"{origin}: x_{split} has dtype {x.dtype}, expected uint8 pixels")
            x = x.astype(np.uint8)
        y = y.reshape(-1)
        if y.shape[0] != x.shape[0]:
            raise DataError(f"{origin}: y_{split} has {y.shape[0]} labels for {x.shape[0]} images")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() > 9)):
            raise DataError(f"{origin}: y_{split} must hold integer digits 0-9")
        if x.shape[0] == 0:
            raise DataError(f"{origin}: x_{split} is empty")
        out[f"x_{split}"], out[f"y_{split}"] = x, y  # labels keep their dtype (fingerprint)
    return out


def load_npz(path: str | os.PathLike[str], *, source: str | None = None) -> Dataset:
    """Load a Keras-layout ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``)."""
    file = Path(path)
    if not file.is_file():
        raise DataError(f"data file not found: {file}")
    with np.load(file) as npz:
        arrays = _validated({name: npz[name] for name in npz.files}, str(file))
    return Dataset(**arrays, source=source or str(file), path=str(file))


def load_sample() -> Dataset:
    """Load the real-MNIST sample shipped with the package (7,500 train / 1,500 test digits)."""
    return load_npz(SAMPLE_PATH, source=SAMPLE_SOURCE)


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Temporarily set the default socket timeout."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def load_mnist(*, timeout: float = DOWNLOAD_TIMEOUT, quiet: bool = False) -> Dataset:
    """Load full MNIST with Keras' loader, falling back to the shipped sample when offline."""
    from keras.datasets import mnist  # lazy: importing Keras pulls in TensorFlow

    # Keras prints "Downloading data from ..." and a progress bar on stdout: hide them if quiet.
    hush = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    try:
        with _socket_timeout(timeout), hush:
            (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as error:  # noqa: BLE001 - any download failure means "offline"
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        log.warning(
            "MNIST download impossible (%s): falling back to the shipped sample %s",
            reason,
            SAMPLE_PATH,
        )
        sample = load_sample()
        return Dataset(
            x_train=sample.x_train,
            y_train=sample.y_train,
            x_test=sample.x_test,
            y_test=sample.y_test,
            source=SAMPLE_SOURCE,
            path=sample.path,
            fell_back=True,
        )
    arrays = _validated(
        {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}, "mnist"
    )
    return Dataset(**arrays, source=MNIST_SOURCE)


def load_payload_log(path: str | os.PathLike[str]) -> Dataset:
    """A payload log (a ``.jsonl`` file or a directory of them) as a Dataset: its labelled images,
    one in five held out for testing; the counts (labelled, skipped, ...) are logged."""
    labelled = payload_logs.read_labelled(path)
    log.info("payload log %s: %s", path, labelled.counts.summary())
    arrays = _validated(payload_logs.split(labelled), f"payload log {path}")
    return Dataset(**arrays, source=payload_logs.SOURCE_PREFIX + os.fspath(path), path=os.fspath(path))


def load_dataset(
    source: str | os.PathLike[str] = MNIST_SOURCE,
    *,
    timeout: float = DOWNLOAD_TIMEOUT,
    quiet: bool = False,
) -> Dataset:
    """Load ``source``: ``"mnist"`` (with offline fallback), ``"sample"``, an ``.npz`` path, or a
    payload log (a ``.jsonl`` file or a directory of them)."""
    name = os.fspath(source)
    if name == MNIST_SOURCE:
        return load_mnist(timeout=timeout, quiet=quiet)
    if name == SAMPLE_SOURCE:
        return load_sample()
    if payload_logs.is_payload_log(name):
        return load_payload_log(name)
    return load_npz(name)


def main(argv: list[str] | None = None) -> int:
    """``python -m digits_trainer.data [--sample-path | SOURCE]``: locate or describe data."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m digits_trainer.data",
        description="Print the shipped sample's path, or describe a data source.",
    )
    parser.add_argument("--sample-path", action="store_true",
                        help="print the path of the shipped real-MNIST sample npz and exit")
    parser.add_argument("source", nargs="?", default=SAMPLE_SOURCE,
                        help="mnist, sample (default) or an .npz path to describe")
    args = parser.parse_args(argv)
    if args.sample_path:
        print(SAMPLE_PATH)
        return 0
    try:
        data = load_dataset(args.source, quiet=True)
    except (DataError, ValueError) as error:
        print(f"error: {error}")
        return 1
    print(f"source: {data.source}\npath: {data.path}\ntrain: {data.n_train}\n"
          f"test: {data.n_test}\nfingerprint: {data.fingerprint()}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())


def split_validation(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hold out a seeded random ``fraction`` of ``(x, y)``: returns ``x_fit, y_fit, x_val, y_val``."""
    n_val = round(len(x) * fraction)
    if fraction > 0:
        n_val = min(max(n_val, 1), len(x) - 1)
    order = np.random.default_rng(seed).permutation(len(x))
    val, fit = np.sort(order[:n_val]), np.sort(order[n_val:])
    return x[fit], y[fit], x[val], y[val]
