"""A server's payload log (``digits-server --payload-log DIR``) as training data.

The log is JSON Lines (one file, or a directory of rotated ``*.jsonl`` files): a ``prediction``
record per request with its inputs, and a ``feedback`` record per label Feedback brought later,
with the same request id (docs/observability.md, "Payload logging"). Each logged image becomes
a training example when its true digit is known, from a feedback record (which wins) or from the
request itself (``true_labels``); images with no label are skipped and counted. Inputs are
decoded as the server decodes them: 784 raw pixels as they are, uploaded files (PNG, JPEG, ...)
by ``digits.imaging.preprocess``, the preprocessing the server runs (the client package, with
Pillow). One image in ``1/TEST_EVERY`` (chosen by a hash of its request id and index, so the
same traffic splits the same way every time) is held out as the test split.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SIDE = 28
TEST_EVERY = 5  # one labelled image in five is held out for testing
SOURCE_PREFIX = "payload-log:"


class PayloadLogError(ValueError):
    """The payload log cannot give a training set (missing, empty, too few labels); says why."""


@dataclass
class PayloadLogCounts:
    """What reading a payload log found (the trainer logs it)."""

    files: int = 0
    predictions: int = 0  # prediction records (requests), after duplicates
    images: int = 0  # images in them
    labelled_by_feedback: int = 0
    labelled_in_request: int = 0
    skipped_unlabelled: int = 0  # images with no label: not training data
    feedback: int = 0  # feedback records
    orphan_feedback: int = 0  # feedback whose prediction is not in the log (not sampled, or in another log)
    undecodable: int = 0  # inputs that do not decode to a digit (skipped)
    bad_lines: int = 0  # lines that are not JSON records (e.g. one cut by a full disk)

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"{self.predictions} requests ({self.images} images) in {self.files} file(s); "
            f"{self.labelled_by_feedback} labelled by feedback, {self.labelled_in_request} in the request, "
            f"{self.skipped_unlabelled} skipped (no label), {self.undecodable} undecodable, "
            f"{self.orphan_feedback} of {self.feedback} feedback without a logged request, "
            f"{self.bad_lines} unreadable line(s)"
        )


@dataclass(frozen=True)
class LabelledImages:
    """The labelled images of a payload log, in log order, with where each came from."""

    images: np.ndarray  # uint8 [N,28,28]
    labels: np.ndarray  # uint8 [N]
    keys: list[tuple[str, int]]  # (request id, image index)
    counts: PayloadLogCounts


def is_payload_log(path: str | os.PathLike[str]) -> bool:
    """Whether ``--data`` names a payload log: a ``.jsonl`` file or a directory holding some."""
    target = Path(path)
    if target.is_dir():
        return any(target.rglob("*.jsonl"))
    return target.suffix == ".jsonl"


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The JSON Lines files of a log, in name order (rotated files are named in time order)."""
    target = Path(path)
    if target.is_dir():
        return sorted(target.rglob("*.jsonl"))
    if not target.is_file():
        raise PayloadLogError(f"payload log not found: {target}")
    return [target]


def read_labelled(path: str | os.PathLike[str]) -> LabelledImages:
    """Every labelled image of a payload log (see the module docstring)."""
    counts = PayloadLogCounts()
    predictions: dict[str, dict] = {}  # request id -> its record (a retried write repeats it)
    feedback: dict[tuple[str, int], int] = {}
    files = log_files(path)
    counts.files = len(files)
    for file in files:
        with open(file, "rb") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    kind = record["event"]
                    if kind == "prediction":
                        predictions[str(record["id"])] = record
                    elif kind == "feedback":
                        counts.feedback += 1
                        feedback[(str(record["id"]), int(record["index"]))] = int(record["true_label"])
                except (ValueError, KeyError, TypeError):
                    counts.bad_lines += 1
    counts.predictions = len(predictions)
    counts.orphan_feedback = sum(1 for request_id, _ in feedback if request_id not in predictions)
    images, labels, keys = [], [], []
    for request_id, record in predictions.items():
        inputs, true_labels = record.get("inputs") or [], record.get("true_labels") or []
        for index, sent in enumerate(inputs):
            counts.images += 1
            label = feedback.get((request_id, index))
            if label is not None:
                counts.labelled_by_feedback += 1
            elif index < len(true_labels) and true_labels[index] is not None:
                label = int(true_labels[index])
                counts.labelled_in_request += 1
            else:
                counts.skipped_unlabelled += 1
                continue
            image = decode_input(sent)
            if image is None or not 0 <= label <= 9:
                counts.undecodable += 1
                continue
            images.append(image)
            labels.append(label)
            keys.append((request_id, index))
    stacked = np.stack(images) if images else np.zeros((0, SIDE, SIDE), np.uint8)
    return LabelledImages(stacked, np.asarray(labels, dtype=np.uint8), keys, counts)


def decode_input(sent: dict) -> np.ndarray | None:
    """One logged input as the uint8 [28,28] digit the server computed on; None when it cannot be."""
    try:
        if "pixels" in sent:
            raw = base64.b64decode(sent["pixels"], validate=True)
            return np.frombuffer(raw, np.uint8).reshape(SIDE, SIDE) if len(raw) == SIDE * SIDE else None
        data = base64.b64decode(sent["file"], validate=True)
    except (binascii.Error, KeyError, TypeError):
        return None
    try:
        from digits.imaging import ImageError, PillowMissing, preprocess
    except ImportError:
        raise PayloadLogError(
            "payload log: decoding uploaded image files needs the digits client package with Pillow "
            "(pip install 'digits-client[images]')"
        ) from None
    try:
        return preprocess(data)
    except ImageError:
        return None
    except PillowMissing as exc:
        raise PayloadLogError(f"payload log: {exc}") from None


def is_test(key: tuple[str, int]) -> bool:
    """Whether an image is held out for testing (by its request id and index)."""
    return zlib.crc32(f"{key[0]}#{key[1]}".encode()) % TEST_EVERY == 0


def split(labelled: LabelledImages) -> dict[str, np.ndarray]:
    """The Keras-layout arrays: one image in TEST_EVERY to the test split (both splits non-empty)."""
    if len(labelled.labels) < 2:
        raise PayloadLogError(
            f"payload log: {len(labelled.labels)} labelled image(s), at least 2 are needed "
            f"({labelled.counts.summary()})"
        )
    test = np.array([is_test(key) for key in labelled.keys])
    if test.all() or not test.any():  # a tiny log: keep one image on the other side
        test[-1] = not test[-1]
    return {
        "x_train": labelled.images[~test], "y_train": labelled.labels[~test],
        "x_test": labelled.images[test], "y_test": labelled.labels[test],
    }
