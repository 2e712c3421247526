"""Payload logging (`--payload-log`): what each request sent and was answered, and the labels
Feedback brings later, kept as JSON Lines files or posted as CloudEvents, off the request path.

`records` (the record and CloudEvents shapes), `sinks` (JSON Lines with rotation, CloudEvents
over HTTP), `writer` (bounded queue, background thread, retries, drop counts), `logger` (the
data plane's and feedback store's observer: sampling), and `payload_logger` here (built from
Settings). Above core and observability; below app, which wires it in.
"""

from __future__ import annotations

import socket
from pathlib import Path

from prometheus_client import CollectorRegistry

from digits_server.core.errors import ConfigurationError
from digits_server.observability.payload_log_metrics import PayloadLogMetrics
from digits_server.payload_log.logger import PayloadLogger
from digits_server.payload_log.sinks import CloudEventsSink, JsonLinesSink, Sink
from digits_server.payload_log.writer import BackgroundWriter
from digits_server.settings import Settings


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
