"""The feedback store: recent predictions remembered by request id, so that a true digit
learned later (the Feedback RPC) is counted against the model version that actually served.

Bounded two ways, both settings: at most `max_predictions` images are remembered (the
oldest requests are forgotten first) and none for longer than `max_age_seconds`. Request ids
longer than MAX_REQUEST_ID_CHARS are not remembered, so memory stays bounded under any traffic.
Each image can be labelled once: a label sent with the request, or one feedback. A reused
request id replaces what was remembered under it (the caller's newest prediction wins).
Shadow (mirrored) predictions are not remembered: no caller saw them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np

from digits_server.core.domain import FeedbackEvent, FeedbackObserver, PredictionEvent, ServedBy
from digits_server.core.errors import AlreadyExists, InvalidInput, RequestNotFound
from digits_server.observability.metrics import ServerMetrics

log = logging.getLogger(__name__)

MAX_REQUEST_ID_CHARS = 256
_OPEN, _LABELLED_IN_REQUEST, _FEEDBACK_GIVEN = 0, 1, 2


class _Remembered:
    """One request's predictions: who served them, the digits, and each image's label state."""

    __slots__ = ("served_by", "digits", "states", "at")

    def __init__(self, served_by: ServedBy, digits: bytes, states: bytearray, at: float) -> None:
        self.served_by = served_by
        self.digits = digits
        self.states = states
        self.at = at


class FeedbackStore:
    """Remembers recent live predictions and turns feedback into FeedbackEvents for its listeners."""

    def __init__(
        self,
        max_predictions: int = 100_000,
        max_age_seconds: float = 3600.0,
        listeners: Sequence[FeedbackObserver] = (),
        metrics: ServerMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_predictions = max_predictions
        self.max_age_seconds = max_age_seconds
        self.listeners: list[FeedbackObserver] = list(listeners)
        self._metrics = metrics
        self._clock = clock
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()  # oldest first
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held(self) -> int:
        """Predictions (images) remembered now."""
        return self._held

    def observe(self, event: PredictionEvent) -> None:
        """PredictionObserver: remember a live request's predictions under its request id."""
        count = len(event.digits)
        if event.shadow or not event.request_id or len(event.request_id) > MAX_REQUEST_ID_CHARS:
            return
        if count == 0 or count > self.max_predictions:
            return
        labels = event.true_labels if len(event.true_labels) == count else [None] * count
        if all(label is None for label in labels):
            states = bytearray(count)  # all _OPEN
        else:
            states = bytearray(_OPEN if label is None else _LABELLED_IN_REQUEST for label in labels)
        digits = np.asarray(event.digits, dtype=np.uint8).tobytes()
        with self._lock:
            now = self._clock()
            replaced = self._entries.pop(event.request_id, None)
            if replaced is not None:
                self._held -= len(replaced.digits)
            self._entries[event.request_id] = _Remembered(event.served_by, digits, states, now)
            self._held += count
            self._evict(now)
            held = self._held
        if self._metrics is not None:
            self._metrics.set_feedback_held(held)

    def give(self, request_id: str, index: int, true_label: int) -> FeedbackEvent:
        """Record the true digit of image `index` of an earlier request and tell the listeners.

        RequestNotFound: unknown, expired or forgotten request id. AlreadyExists: that image was labelled
        already (in its request or by an earlier feedback). InvalidInput: index out of range.
        """
        with self._lock:
            self._evict(self._clock())
            held = self._held
            entry = self._entries.get(request_id)
            if entry is None:
                raise RequestNotFound(
                    f"request_id: no remembered prediction '{request_id[:MAX_REQUEST_ID_CHARS]}' (unknown, older than "
                    f"{self.max_age_seconds:g}s, or pushed out by the newest {self.max_predictions} predictions)"
                )
            if index >= len(entry.digits):
                raise InvalidInput(
                    f"index: request '{request_id}' has {len(entry.digits)} prediction(s), got index {index}"
                )
            state = entry.states[index]
            if state == _LABELLED_IN_REQUEST:
                raise AlreadyExists(f"request_id: '{request_id}' index {index} was labelled in its request already")
            if state == _FEEDBACK_GIVEN:
                raise AlreadyExists(f"request_id: '{request_id}' index {index} has received feedback already")
            entry.states[index] = _FEEDBACK_GIVEN
            event = FeedbackEvent(entry.served_by, request_id, index, entry.digits[index], true_label)
        if self._metrics is not None:
            self._metrics.set_feedback_held(held)
        for listener in self.listeners:
            try:
                listener.observe_feedback(event)
            except Exception:
                log.exception("feedback listener %s failed", type(listener).__name__)
        return event

    def _evict(self, now: float) -> None:
        """Forget expired entries, then the oldest ones while over capacity (lock held)."""
        expired = over = 0
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now - oldest.at > self.max_age_seconds:
                expired += self._pop_oldest()
            elif self._held > self.max_predictions:
                over += self._pop_oldest()
            else:
                break
        if self._metrics is not None:
            if expired:
                self._metrics.count_feedback_evicted("age", expired)
            if over:
                self._metrics.count_feedback_evicted("capacity", over)

    def _pop_oldest(self) -> int:
        _, entry = self._entries.popitem(last=False)
        self._held -= len(entry.digits)
        return len(entry.digits)
