"""Where payload-log records go: JSON Lines files rotated by size, or CloudEvents over HTTP.

Both are called from the background writer's thread only, with a batch of records; a sink
writes them in order and raises SinkError(written=k) when it fails after the first k (the
writer retries the rest with backoff, then drops and counts them).
"""

from __future__ import annotations

import http.client
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from digits_server.observability.payload_records import Record, cloud_events, json_line

FILE_PREFIX = "payloads-"
FILE_SUFFIX = ".jsonl"


class SinkError(Exception):
    """A sink failed after writing the first `written` records of a batch."""

    def __init__(self, written: int, reason: str) -> None:
        super().__init__(reason)
        self.written = written


class Sink(Protocol):
    """Writes batches of records; raises SinkError when it cannot."""

    name: str

    def write(self, records: Sequence[Record]) -> None:
        """Write every record, in order, or raise SinkError(written=k)."""

    def close(self) -> None:
        """Release connections or files."""


class JsonLinesSink:
    """Appends records to `<directory>/payloads-<start>-<host>-<pid>-<n>.jsonl`, starting the next
    file once one would pass `max_file_bytes` (rotation by size, like KServe's logger writing
    blob storage). Each batch opens, appends and closes its file, so a directory that goes away
    or turns read-only is noticed at once, and finished files can be shipped or moved away."""

    name = "jsonl"

    def __init__(self, directory: Path, max_file_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.max_file_bytes = max(int(max_file_bytes), 1)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
        self._stem = f"{FILE_PREFIX}{stamp}-{socket.gethostname()}-{os.getpid()}"
        self._number = 0
        self._size = 0

    @property
    def path(self) -> Path:
        """The file being appended to now."""
        return self.directory / f"{self._stem}-{self._number:05d}{FILE_SUFFIX}"

    def write(self, records: Sequence[Record]) -> None:
        """Append the batch as whole lines (to the next file when this one is full)."""
        data = b"".join(json_line(record) for record in records)
        if self._size and self._size + len(data) > self.max_file_bytes:
            self._number, self._size = self._number + 1, 0
        try:
            with open(self.path, "ab") as handle:
                handle.write(data)
        except OSError as exc:
            # A partly appended batch is written again whole: readers skip a cut line (trainer).
            self._size = _size_of(self.path)
            raise SinkError(0, f"{self.path}: {exc.strerror or exc}") from None
        self._size += len(data)

    def close(self) -> None:
        """Nothing stays open between batches."""


def _size_of(path: Path) -> int:
    """A file's size, 0 when it cannot be seen."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


class CloudEventsSink:
    """POSTs each record as CloudEvents in binary content mode (KServe's logger's shape: ce-id is
    the request id, ce-type says request, response or feedback) over one kept-alive connection."""

    name = "cloudevents"

    def __init__(self, url: str, source: str, timeout: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"payload_log: {url!r} is not an http:// or https:// URL")
        self.url = url
        self.source = source
        self.timeout = timeout
        self._scheme, self._host, self._port = parts.scheme, parts.hostname, parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._connection: http.client.HTTPConnection | None = None

    def write(self, records: Sequence[Record]) -> None:
        """POST every record's events; a refused connection, a timeout or a non-2xx status stops the batch."""
        for done, record in enumerate(records):
            for headers, body in cloud_events(record, self.source):
                try:
                    self._post(headers, body)
                except (OSError, http.client.HTTPException) as exc:
                    self.close()
                    raise SinkError(done, f"{self.url}: {exc}") from None

    def _post(self, headers: dict[str, str], body: bytes) -> None:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
            self._connection = kind(self._host, self._port, timeout=self.timeout)
        self._connection.request("POST", self._path, body, headers)
        response = self._connection.getresponse()
        response.read()
        if not 200 <= response.status < 300:
            raise http.client.HTTPException(f"HTTP {response.status} {response.reason}")
        if response.will_close:
            self.close()

    def close(self) -> None:
        """Drop the connection (the next POST opens a new one)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
