"""The feedback store: turns a true digit learned later (the Feedback RPC) into a FeedbackEvent
counted against the model version (and experiment arm) that actually served.

Server-made request ids are signed (`request_ids`): they carry the model, version, experiment,
arm and each image's predicted digit, so any replica sharing the key accepts their feedback and
nothing is remembered per prediction. What is remembered for them is which images received
feedback *at this replica* (the seen memory: at most `max_predictions` labels, each only until
its id expires), so a second label for one image here is ALREADY_EXISTS. A duplicate sent to
another replica is accepted there once: an image can be counted at most once per replica within
the id's lifetime (`max_age_seconds`).

Client-chosen request ids cannot carry anything: their predictions are remembered here, and
only this replica takes their feedback. That memory is bounded two ways, both settings: at most `max_predictions` images are remembered (the
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
from typing import Protocol

import numpy as np

from digits_server.core.domain import FeedbackEvent, FeedbackObserver, PredictionEvent, ServedBy
from digits_server.core.errors import AlreadyExists, InvalidInput, RequestNotFound
from digits_server.core.request_ids import LABELLED_IN_REQUEST, RequestIds, SignedPrediction, is_signed

log = logging.getLogger(__name__)

MAX_REQUEST_ID_CHARS = 256
_OPEN, _LABELLED_IN_REQUEST, _FEEDBACK_GIVEN = 0, 1, 2


class FeedbackMetrics(Protocol):
    """Where the store reports its memory and refusals (observability.metrics.ServerMetrics implements it)."""

    def set_feedback_held(self, predictions: int) -> None:
        """Predictions (images) remembered now."""

    def count_feedback_rejected(self, reason: str) -> None:
        """One feedback refused, by reason (duplicate, expired, forged, ...)."""

    def count_feedback_evicted(self, reason: str, predictions: int) -> None:
        """Remembered predictions forgotten, by reason (age, capacity)."""


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
        metrics: FeedbackMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        request_ids: RequestIds | None = None,
    ) -> None:
        self.max_predictions = max_predictions
        self.request_ids = request_ids if request_ids is not None else RequestIds()
        self.max_age_seconds = max_age_seconds
        self.listeners: list[FeedbackObserver] = list(listeners)
        self._metrics = metrics
        self._clock = clock
        self._entries: OrderedDict[str, _Remembered] = OrderedDict()  # oldest first
        self._held = 0
        self._seen: OrderedDict[bytes, _Seen] = OrderedDict()  # signed ids with feedback here, oldest first
        self._seen_labels = 0
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
        if is_signed(event.request_id):  # the id carries the prediction itself
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
        already (in its request or by an earlier feedback here). InvalidInput: index out of range,
        or a signed id that is malformed, forged or altered. Rejections are counted by reason.
        """
        try:
            event = self._accept(request_id, index, true_label)
        except (RequestNotFound, AlreadyExists, InvalidInput) as exc:
            if self._metrics is not None:
                self._metrics.count_feedback_rejected(_reason(exc))
            raise
        for listener in self.listeners:
            try:
                listener.observe_feedback(event)
            except Exception:
                log.exception("feedback listener %s failed", type(listener).__name__)
        return event

    def _accept(self, request_id: str, index: int, true_label: int) -> FeedbackEvent:
        with self._lock:
            self._evict(self._clock())
            held = self._held
            entry = self._entries.get(request_id)
            if entry is None and is_signed(request_id):
                return self._accept_signed(request_id, index, true_label)
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
        return event

    def _accept_signed(self, request_id: str, index: int, true_label: int) -> FeedbackEvent:
        """Feedback for a signed id (lock held): verify, check age, index and this replica's seen memory."""
        signed = self.request_ids.verify(request_id)
        shown = request_id[:48] + ("..." if len(request_id) > 48 else "")
        age = self.request_ids.age(signed)
        if age > self.max_age_seconds:
            raise RequestNotFound(f"request_id: '{shown}' expired: issued {age:.0f}s ago, feedback is taken for "
                           f"{self.max_age_seconds:g}s")
        if index >= len(signed.nibbles):
            raise InvalidInput(f"index: request '{shown}' has {len(signed.nibbles)} prediction(s), got index {index}")
        predicted = signed.nibbles[index]
        if predicted == LABELLED_IN_REQUEST:
            raise AlreadyExists(f"request_id: '{shown}' index {index} was labelled in its request already")
        if predicted > 9:
            raise InvalidInput(f"request_id: '{shown}' index {index} holds no digit")
        self._remember_seen(signed, index, shown)
        return FeedbackEvent(signed.served_by, request_id, index, predicted, true_label)

    def _remember_seen(self, signed: SignedPrediction, index: int, shown: str) -> None:
        """Mark image `index` of a signed id as labelled here; AlreadyExists if it was (lock held)."""
        seen = self._seen.get(signed.mac)
        if seen is None:
            seen = self._seen[signed.mac] = _Seen(signed.issued_at)
        elif seen.indices >> index & 1:
            raise AlreadyExists(f"request_id: '{shown}' index {index} has received feedback already")
        seen.indices |= 1 << index
        self._seen_labels += 1
        seen.count += 1
        now = self.request_ids.now()
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if self._seen_labels <= self.max_predictions and now - oldest.issued_at <= self.max_age_seconds:
                break
            _, gone = self._seen.popitem(last=False)
            self._seen_labels -= gone.count

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


class _Seen:
    """Which images of one signed id received feedback at this replica (a bit per index)."""

    __slots__ = ("issued_at", "indices", "count")

    def __init__(self, issued_at: int) -> None:
        self.issued_at = issued_at
        self.indices = 0
        self.count = 0


def _reason(exc: Exception) -> str:
    """The digits_feedback_rejected_total reason of a refused feedback."""
    text = str(exc)
    if isinstance(exc, AlreadyExists):
        return "duplicate"
    if isinstance(exc, RequestNotFound):
        return "expired" if "expired" in text else "unknown"
    return "forged" if text.startswith("request_id:") else "invalid_index"
