"""The label-free monitor's buffer: live predictions waiting for the next batch (docs/monitoring.md,
"Cost").

A request costs a few list appends and one copy: its digits and probabilities are kept by
reference (small arrays), and the images the monitor samples are copied into an image array
allocated once, so the request's own images are freed as soon as it is answered. A flush
concatenates the digits and probabilities into arrays allocated once (`np.concatenate(out=...)`):
concatenating into fresh arrays cost ~10x more here, most of it the kernel mapping new pages for
them. Memory is fixed: `capacity` predictions and images (~3 MiB at 4,096).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

import numpy as np

from digits_server.core.domain import PredictionEvent

IMAGE_SHAPE = (28, 28)


@dataclass
class _Requests:
    digits: list[np.ndarray] = field(default_factory=list)
    probabilities: list[np.ndarray] = field(default_factory=list)
    images: list[slice] = field(default_factory=list)  # where its sampled images are in the image array


class PredictionBuffer:
    """Up to `capacity` pending predictions (and their sampled images), per version."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.predictions = 0
        self.sampled = 0
        self._pending: dict[Hashable, _Requests] = {}
        self._digits = np.empty(capacity, np.int64)
        self._probabilities = np.empty((capacity, 10), np.float32)
        self._images = np.empty((capacity, *IMAGE_SHAPE), np.uint8)

    @property
    def full(self) -> bool:
        """No room for another prediction."""
        return self.predictions >= self.capacity

    def fits(self, predictions: int) -> bool:
        """Whether a request of this many predictions fits now."""
        return self.predictions + predictions <= self.capacity

    def add(self, key: Hashable, event: PredictionEvent, images: np.ndarray) -> None:
        """Keep one request's predictions and its sampled images, len(images) <= its predictions
        (`fits` must hold). Images of another shape than the data plane's digits are not summarised."""
        requests = self._pending.get(key)
        if requests is None:
            requests = self._pending[key] = _Requests()
        requests.digits.append(event.digits)
        requests.probabilities.append(event.probabilities)
        if images.shape[1:] == IMAGE_SHAPE:
            start, stop = self.sampled, self.sampled + len(images)
            self._images[start:stop] = images
            self.sampled = stop
            if requests.images and requests.images[-1].stop == start:  # one run while one version is served
                requests.images[-1] = slice(requests.images[-1].start, stop)
            else:
                requests.images.append(slice(start, stop))
        self.predictions += len(event.digits)

    def drain(self) -> Iterator[tuple[Hashable, np.ndarray, np.ndarray, np.ndarray]]:
        """Per version: (key, images, digits, confidences), views of the fixed arrays valid until
        the next version's; empties the buffer."""
        pending, self._pending, self.predictions, self.sampled = self._pending, {}, 0, 0
        for key, requests in pending.items():
            n = sum(len(d) for d in requests.digits)
            digits = np.concatenate(requests.digits, out=self._digits[:n])
            probabilities = np.concatenate(requests.probabilities, out=self._probabilities[:n], casting="same_kind")
            runs = requests.images
            images = (self._images[runs[0]] if len(runs) == 1 else
                      np.concatenate([self._images[run] for run in runs]) if runs else self._images[:0])
            yield key, images, digits, confidence(probabilities, digits)


def confidence(probabilities: np.ndarray, digits: np.ndarray) -> np.ndarray:
    """Each prediction's winning probability (the probability of its digit), [N] from [N, 10] and [N]."""
    return probabilities[np.arange(len(digits)), digits]
