"""The payload log's observer: hears every prediction and every accepted feedback from the data
plane and the feedback store (the same interfaces the metrics use, so every protocol is logged
the same way), keeps a sample of them, and queues them for the background writer.

Sampling is decided by the request id (a hash below the rate), so a request's feedback is
logged exactly when its prediction was, with no memory. The rate is the server's
(`--payload-log-sample`), or the model's `payload_log_sample` in the model config file (which
wins, and follows the file's reloads): `--payload-log-sample 0` with `payload_log_sample: 1` on
one model logs that model only. Shadow (mirrored) predictions are not logged: no caller saw them.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Mapping

from digits_server.core.domain import FeedbackEvent, PredictionEvent
from digits_server.core.model_config import ServingConfig
from digits_server.payload_log.records import FEEDBACK, PREDICTION
from digits_server.payload_log.writer import BackgroundWriter

_HASH_RANGE = 1 << 32


class PayloadLogger:
    """A PredictionObserver and FeedbackObserver that queues sampled records for the writer."""

    observes_groups = True  # a stream's group is one event: each request in it is sampled on its own

    def __init__(
        self, writer: BackgroundWriter, sample: float = 1.0, model_samples: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.sample = sample
        self.model_samples: dict[str, float] = dict(model_samples or {})
        self._clock = clock

    def configure(self, config: ServingConfig) -> None:
        """A reloader listener: the model config's per-model rates (a model it no longer names: the server's)."""
        self.model_samples = config.payload_log_samples()

    def sampled(self, model: str, request_id: str) -> bool:
        """Whether this request of this model is logged (the same answer for its feedback)."""
        rate = self.model_samples.get(model, self.sample)
        if rate >= 1.0:
            return True
        if rate <= 0.0:
            return False
        return zlib.crc32(request_id.encode()) < rate * _HASH_RANGE

    def observe(self, event: PredictionEvent) -> None:
        """PredictionObserver: queue the sampled requests of a prediction event."""
        if event.shadow:
            return
        model, now, offer = event.served_by.model, self._clock(), self.writer.offer
        if event.request_ids:
            for index, request_id in enumerate(event.request_ids):
                if self.sampled(model, request_id):
                    offer((PREDICTION, now, event, index))
        elif self.sampled(model, event.request_id):
            offer((PREDICTION, now, event, -1))

    def observe_feedback(self, event: FeedbackEvent) -> None:
        """FeedbackObserver: queue the feedback of a request whose prediction was sampled."""
        if self.sampled(event.served_by.model, event.request_id):
            self.writer.offer((FEEDBACK, self._clock(), event, -1))

    def start(self) -> None:
        """Start the background writer."""
        self.writer.start()

    def close(self, timeout: float) -> None:
        """Flush what is queued (at most `timeout` seconds), then stop (blocking: call off the event loop)."""
        self.writer.close(timeout)
