"""Dynamic batching: one batcher per loaded model version joins concurrent requests into one
model call of up to `max_batch_size` images, waiting at most `batch_timeout` after the first
request of a batch arrived.

The queue is bounded (`max_queued` images per version): a request that does not fit is
rejected at once (Overloaded). A request whose deadline passes while queued is dropped, not
computed (DeadlineExpired); a cancelled request frees its place at once. Batched model calls
run in the compute executor, off the event loop; each caller gets exactly its own rows back.
A request larger than `max_batch_size` is computed alone, in one call. One exception runs on
the event loop: with a batch timeout of 0 and `inline_single`, a lone single image for a model
with a cheap single-image runtime (LiteRT) is computed inline when its batcher is idle (see
`BatchingRunner.run`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from digits_server.core.domain import Timings
from digits_server.core.errors import DeadlineExpired, ModelUnavailable, Overloaded
from digits_server.core.loaded_model import LoadedModel

log = logging.getLogger(__name__)


class QueueMetrics(Protocol):
    """Where a batcher reports its queue (metrics.ServerMetrics implements it)."""

    def set_queue_depth(self, model: str, version: str, depth: int) -> None:
        """Images waiting in one version's queue."""

    def count_rejected(self, model: str, version: str) -> None:
        """One request rejected because the queue was full."""


@dataclass(frozen=True)
class BatchingOptions:
    """The batching knobs. The server builds them from its settings (app.batching_options); these
    defaults equal the settings' defaults (tests/server/test_settings.py keeps them so)."""

    max_batch_size: int = 64
    batch_timeout: float = 0.0
    max_queued: int = 1024
    concurrent_batches: int = 2
    enabled: bool = True
    inline_single: bool = True

    def warm_up_sizes(self) -> tuple[int, ...]:
        """Batch sizes a new version is warmed up at: one image, a small batch and a full batch."""
        largest = self.max_batch_size if self.enabled else 1
        return tuple(sorted({1, min(8, largest), largest}))


@dataclass(eq=False)
class _Request:
    images: np.ndarray
    deadline: float | None
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)
    queued: bool = True


class Batcher:
    """The queue and batching loop of one loaded model version."""

    def __init__(self, model: LoadedModel, options: BatchingOptions, executor: Executor, metrics: QueueMetrics) -> None:
        self.model = model
        self.options = options
        self._executor = executor
        self._metrics = metrics
        self._labels = (model.name, str(model.version))
        self._pending: collections.deque[_Request] = collections.deque()
        self._queued_images = 0
        self._arrived = asyncio.Event()
        self._free = asyncio.Semaphore(max(options.concurrent_batches, 1))
        self._computing: set[asyncio.Task] = set()
        self._loop_task = asyncio.create_task(self._loop(), name=f"batcher-{model.name}-{model.version}")

    def submit(self, images: np.ndarray, deadline: float | None) -> _Request:
        """Queue a request, or raise Overloaded (queue full) / DeadlineExpired (deadline already past)."""
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExpired("the deadline passed before the request was queued")
        if self._queued_images + len(images) > self.options.max_queued:
            self._metrics.count_rejected(*self._labels)
            raise Overloaded(
                f"model '{self.model.name}' version {self.model.version}: queue full "
                f"({self._queued_images} of {self.options.max_queued} images waiting); retry later"
            )
        request = _Request(images, deadline, asyncio.get_running_loop().create_future())
        self._pending.append(request)
        self._set_depth(self._queued_images + len(images))
        self._arrived.set()
        return request

    @property
    def idle(self) -> bool:
        """Nothing queued and no model call running."""
        return not self._pending and not self._computing

    def withdraw(self, request: _Request, error: Exception | None = None) -> None:
        """The caller gave up (cancelled, or `error` such as its deadline): free its place; its result,
        if any, is dropped."""
        self._dequeue(request)
        if not request.future.done():
            if error is None:
                request.future.cancel()
            else:
                request.future.set_exception(error)

    def _dequeue(self, request: _Request) -> None:
        if request.queued:
            request.queued = False
            self._set_depth(self._queued_images - len(request.images))

    def _set_depth(self, depth: int) -> None:
        self._queued_images = depth
        self._metrics.set_queue_depth(*self._labels, depth)

    async def _loop(self) -> None:
        while True:
            await self._free.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._free.release()
                raise
            task = asyncio.create_task(self._compute(batch))
            self._computing.add(task)
            task.add_done_callback(self._computing.discard)

    def _drop_dead(self) -> None:
        """Remove withdrawn requests and fail those whose deadline passed, from the head of the queue on."""
        now = time.monotonic()
        for request in list(self._pending):
            expired = request.deadline is not None and now >= request.deadline
            if not request.queued or request.future.done() or expired:
                self._pending.remove(request)
                self._dequeue(request)
                if expired and not request.future.done():
                    request.future.set_exception(DeadlineExpired("the deadline passed while the request was queued"))

    async def _next_batch(self) -> list[_Request]:
        while True:
            self._drop_dead()
            if not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            close_at = self._pending[0].enqueued + self.options.batch_timeout
            while self._queued_images < self.options.max_batch_size:
                remaining = close_at - time.perf_counter()
                if remaining <= 0:
                    break
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
            self._drop_dead()
            batch: list[_Request] = []
            size = 0
            while self._pending and (not batch or size + len(self._pending[0].images) <= self.options.max_batch_size):
                request = self._pending.popleft()
                self._dequeue(request)
                batch.append(request)
                size += len(request.images)
            if batch:
                return batch

    async def _compute(self, batch: list[_Request]) -> None:
        try:
            images = batch[0].images if len(batch) == 1 else np.concatenate([r.images for r in batch])
            started = time.perf_counter()
            loop = asyncio.get_running_loop()
            try:
                probabilities = await loop.run_in_executor(self._executor, self.model.predict, images)
            except Exception as exc:
                for request in batch:
                    if not request.future.done():
                        request.future.set_exception(exc)
                return
            finished = time.perf_counter()
            offset = 0
            for request in batch:
                rows = probabilities[offset: offset + len(request.images)]
                offset += len(request.images)
                if not request.future.done():
                    timings = Timings(started - request.enqueued, finished - started, len(images))
                    request.future.set_result((rows, timings))
        finally:
            self._free.release()

    async def close(self) -> None:
        """Stop the loop; queued requests fail with ModelUnavailable."""
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        for request in self._pending:
            self._dequeue(request)
            if not request.future.done():
                request.future.set_exception(ModelUnavailable(f"model '{self.model.name}' is being unloaded"))
        self._pending.clear()
        self._metrics.set_queue_depth(*self._labels, 0)


class BatchingRunner:
    """A ModelRunner that batches concurrent requests per model version (see the module doc)."""

    def __init__(self, options: BatchingOptions, executor: Executor, metrics: QueueMetrics) -> None:
        self.options = options
        self._executor = executor
        self._metrics = metrics
        self._batchers: dict[int, Batcher] = {}
        # inline only when nobody asked requests to wait for a batch (batch timeout 0)
        self._inline = options.inline_single and options.enabled and options.batch_timeout == 0

    def batcher(self, model: LoadedModel) -> Batcher:
        """The batcher of a loaded version (made on first use)."""
        batcher = self._batchers.get(id(model))
        if batcher is None or batcher.model is not model:
            batcher = self._batchers[id(model)] = Batcher(model, self.options, self._executor, self._metrics)
        return batcher

    async def run(self, model: LoadedModel, images: np.ndarray, deadline: float | None) -> tuple[np.ndarray, Timings]:
        """See runner.ModelRunner.run.

        With a batch timeout of 0 and `inline_single`, a single image for a model with a cheap
        single-image runtime (LiteRT, ~0.1 ms) is computed right here on the event loop when its
        batcher is idle: a thread hop costs more CPU than that computation, and no batch could
        form anyway. Requests that find the batcher busy queue as usual.
        """
        batcher = self.batcher(model)
        if self._inline and len(images) == 1 and getattr(model, "cheap_single", False) and batcher.idle:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExpired("the deadline passed before the request was queued")
            started = time.perf_counter()
            probabilities = model.predict(images)
            return probabilities, Timings(0.0, time.perf_counter() - started, 1)
        request = batcher.submit(images, deadline)
        timer = None
        if deadline is not None:  # one timer handle, not asyncio.wait's task and callbacks
            expired = DeadlineExpired("the deadline passed before the model answered")
            timer = asyncio.get_running_loop().call_later(
                max(deadline - time.monotonic(), 0.0), batcher.withdraw, request, expired
            )
        try:
            return await request.future
        except asyncio.CancelledError:
            batcher.withdraw(request)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    async def forget(self, model: LoadedModel) -> None:
        """Close the batcher of a version that is being unloaded."""
        batcher = self._batchers.pop(id(model), None)
        if batcher is not None and batcher.model is model:
            await batcher.close()

    async def close(self) -> None:
        """Close every batcher."""
        batchers, self._batchers = list(self._batchers.values()), {}
        for batcher in batchers:
            await batcher.close()
