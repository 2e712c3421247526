"""The payload log's background writer: a bounded queue the request path appends to, and one
thread that builds the records and hands them to the sink.

The request path only appends to a deque (no lock, no I/O, no JSON): when the queue holds
`capacity` images (a record weighs its images, a feedback 1: what bounds the memory it holds)
the new record is dropped and counted (`queue_full`). The thread takes up to
`batch` records at a time; a sink that fails is retried with exponential backoff (`backoff`,
doubling, at most `max_backoff` seconds between attempts) up to `attempts` times, then the
batch's remaining records are dropped and counted (`sink_error`), and the thread goes on with
the next batch: a sink that is down never stops the thread, and never reaches a request.
`close(timeout)` flushes what is queued; whatever is still unwritten at the deadline is counted
as dropped (`shutdown`). Every record offered ends up counted once, written or dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from digits_server.observability.payload_log_metrics import PayloadLogMetrics
from digits_server.observability.payload_records import Pending, Record, build, weight
from digits_server.observability.payload_sinks import Sink, SinkError

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 0.02  # how often an idle writer looks at the queue (the request path never wakes it)


class BackgroundWriter:
    """Moves queued records to a sink from one daemon thread; drops and counts, never blocks the caller."""

    def __init__(
        self, sink: Sink, metrics: PayloadLogMetrics, capacity: int = 10_000, *, batch: int = 256,
        attempts: int = 5, backoff: float = 0.05, max_backoff: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self.capacity = max(int(capacity), 1)
        self.batch = batch
        self.attempts = max(int(attempts), 1)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._clock = clock
        self._queue: deque[Pending] = deque()
        # Images queued = offered - taken: each counter has one writer (the event loop, the thread), so no lock.
        self._offered = 0
        self._taken = 0
        self._stop = threading.Event()  # set by close(): flush, then end
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._failing = False

    def offer(self, item: Pending) -> None:
        """Queue a record (request path: an append, or a count when the queue is full)."""
        size = weight(item)
        if self._offered - self._taken + size > self.capacity or self._stop.is_set():
            self.metrics.count_dropped(item[0], "queue_full" if not self._stop.is_set() else "shutdown")
            return
        self._offered += size
        self._queue.append(item)

    @property
    def queued(self) -> int:
        """Images (and feedback events) waiting now."""
        return self._offered - self._taken

    def start(self) -> None:
        """Start the writer thread."""
        self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Flush what is queued within `timeout` seconds, count the rest as dropped, stop the thread."""
        self._deadline = self._clock() + max(timeout, 0.0)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(timeout, 0.0) + 10.0)  # a sink call in progress ends by its own timeout
        self._drop_queued("shutdown")  # (the thread is gone, or stuck in a sink call past every timeout)
        self.sink.close()

    def _run(self) -> None:
        while True:
            items = self._take()
            if not items:
                if self._stop.is_set():
                    return
                self._stop.wait(IDLE_POLL_SECONDS)
                continue
            if self._past_deadline():
                self._count_dropped(items, "shutdown")
                continue
            records = []
            for item in items:
                try:
                    records.append(build(item))
                except Exception:  # a bug in building one record must not stop the log
                    log.exception("payload log: cannot build a %s record; dropped", item[0])
                    self.metrics.count_dropped(item[0], "sink_error")
            self._deliver(records)
            self.metrics.set_queued(len(self._queue))

    def _take(self) -> list[Pending]:
        items = []
        queue = self._queue
        while queue and len(items) < self.batch:
            items.append(queue.popleft())
        self._taken += sum(weight(item) for item in items)
        return items

    def _deliver(self, records: list[Record]) -> None:
        """Write a batch with retries; count what was written and what was dropped."""
        remaining = records
        for attempt in range(self.attempts):
            written, failure = self._attempt(remaining)
            self._count_written(remaining[:written])
            remaining = remaining[written:]
            if failure is None:
                if self._failing:
                    self._failing = False
                    log.info("payload log: the %s sink works again", self.sink.name)
                return
            self.metrics.count_sink_error()
            if not self._failing:
                self._failing = True
                log.warning("payload log: the %s sink fails (%s); retrying with backoff, then dropping "
                            "(digits_payload_log_dropped_total)", self.sink.name, failure)
            if attempt + 1 == self.attempts:
                break
            pause = min(self.backoff * 2**attempt, self.max_backoff)
            if self._deadline is not None and self._clock() + pause > self._deadline:
                self._count_dropped(remaining, "shutdown")
                return
            time.sleep(pause)
        self._count_dropped(remaining, "shutdown" if self._past_deadline() else "sink_error")

    def _attempt(self, records: list[Record]) -> tuple[int, str | None]:
        """One try: (records written, why it failed or None)."""
        try:
            self.sink.write(records)
        except SinkError as error:
            return error.written, str(error)
        except Exception as error:  # a bug, not an outage: it must not end the thread either
            log.exception("payload log: the %s sink raised", self.sink.name)
            return 0, f"{type(error).__name__}: {error}"
        return len(records), None

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def _count_written(self, records: list[Record]) -> None:
        for record in records:
            self.metrics.count_written(record["event"])

    def _count_dropped(self, items: list, reason: str) -> None:
        for item in items:
            self.metrics.count_dropped(item["event"] if isinstance(item, dict) else item[0], reason)

    def _drop_queued(self, reason: str) -> None:
        while self._queue:
            self._count_dropped(self._take(), reason)
        self.metrics.set_queued(0)
