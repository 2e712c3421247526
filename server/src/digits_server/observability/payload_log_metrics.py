"""The payload log's Prometheus metrics: records written, records dropped (and why), failed sink
attempts and the queue's depth (fed by payload_writer.py).

Declared on the registry ServerMetrics uses (injected), like experiment_metrics. Every record the
log accepts (a sampled prediction or feedback) ends in exactly one of written or dropped, so
`written + dropped` is the number of records the server meant to log.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

EVENTS = ("prediction", "feedback")
DROP_REASONS = ("queue_full", "sink_error", "shutdown")


class PayloadLogMetrics:
    """Counters of the payload log: written and dropped records by event kind, sink failures."""

    def __init__(self, registry: CollectorRegistry, sink: str) -> None:
        self.written = Counter(
            "digits_payload_log_written_total",
            "Payload-log records the sink accepted, by event (prediction, feedback) and sink (jsonl, cloudevents).",
            ["event", "sink"], registry=registry,
        )
        self.dropped = Counter(
            "digits_payload_log_dropped_total",
            "Payload-log records dropped, by event and reason: queue_full (the bounded queue was full), "
            "sink_error (every retry failed), shutdown (still queued when the flush deadline passed).",
            ["event", "sink", "reason"], registry=registry,
        )
        self.sink_errors = Counter(
            "digits_payload_log_sink_errors_total",
            "Failed attempts to hand records to the payload-log sink (each is retried with backoff).",
            ["sink"], registry=registry,
        )
        self.queued = Gauge(
            "digits_payload_log_queued_records",
            "Payload-log records waiting for the background writer.",
            ["sink"], registry=registry,
        )
        self.sink = sink
        self._written = {event: self.written.labels(event, sink) for event in EVENTS}
        self._dropped = {
            (event, reason): self.dropped.labels(event, sink, reason) for event in EVENTS for reason in DROP_REASONS
        }
        self._sink_errors = self.sink_errors.labels(sink)
        self._queued = self.queued.labels(sink)

    def count_written(self, event: str, records: int = 1) -> None:
        """Records of one event kind the sink accepted."""
        self._written[event].inc(records)

    def count_dropped(self, event: str, reason: str, records: int = 1) -> None:
        """Records of one event kind dropped for `reason` (one of DROP_REASONS)."""
        self._dropped[(event, reason)].inc(records)

    def count_sink_error(self) -> None:
        """One failed attempt to write to the sink."""
        self._sink_errors.inc()

    def set_queued(self, records: int) -> None:
        """Records waiting in the queue now."""
        self._queued.set(records)
