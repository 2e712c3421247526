"""Payload logging (`--payload-log`): the observer and its wiring. The other parts:
`payload_records` (the record and CloudEvents shapes), `payload_sinks` (JSON Lines rotated by
size, CloudEvents over HTTP), `payload_writer` (bounded queue, background thread, retries, drop
counts), `payload_log_metrics` (its counters).

The observer hears every prediction and every accepted feedback from the data
plane and the feedback store (the same interfaces the metrics use, so every protocol is logged
the same way), keeps a sample of them, and queues them for the background writer.

Sampling is decided by the request id (a hash below the rate), so a request's feedback is
logged exactly when its prediction was, with no memory. The rate is the server's
(`--payload-log-sample`), or the model's `payload_log_sample` in the model config file (which
wins, and follows the file's reloads): `--payload-log-sample 0` with `payload_log_sample: 1` on
one model logs that model only. Shadow (mirrored) predictions are not logged: no caller saw them.
"""

from __future__ import annotations

import socket
import time
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry

from digits_server.core.domain import FeedbackEvent, PredictionEvent
from digits_server.core.errors import ConfigurationError
from digits_server.core.model_config import ServingConfig
from digits_server.observability.payload_log_metrics import PayloadLogMetrics
from digits_server.observability.payload_records import FEEDBACK, PREDICTION
from digits_server.observability.payload_sinks import CloudEventsSink, JsonLinesSink, Sink
from digits_server.observability.payload_writer import BackgroundWriter
from digits_server.settings import Settings

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



def payload_logger(settings: Settings, registry: CollectorRegistry) -> PayloadLogger | None:
    """The payload logger `--payload-log` asks for (None when off); ConfigurationError names a bad setting."""
    target = settings.payload_log.strip()
    if not target:
        return None
    if not 0.0 <= settings.payload_log_sample <= 1.0:
        raise ConfigurationError(f"payload_log_sample: must be from 0 to 1, got {settings.payload_log_sample:g}")
    if settings.payload_log_queue < 1:
        raise ConfigurationError(f"payload_log_queue: must be at least 1, got {settings.payload_log_queue}")
    sink: Sink
    if target.startswith(("http://", "https://")):
        try:
            sink = CloudEventsSink(target, f"digits-server/{socket.gethostname()}")
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
    elif "://" in target and not target.startswith("file://"):
        raise ConfigurationError(f"payload_log: {target!r}: give a directory (JSON Lines) or an http(s):// URL")
    else:
        directory = Path(target.removeprefix("file://"))
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(f"payload_log: cannot create the directory {directory} ({exc.strerror or exc})")
        sink = JsonLinesSink(directory, settings.payload_log_file_bytes)
    writer = BackgroundWriter(
        sink, PayloadLogMetrics(registry, sink.name), settings.payload_log_queue, attempts=settings.payload_log_attempts
    )
    return PayloadLogger(writer, settings.payload_log_sample)
