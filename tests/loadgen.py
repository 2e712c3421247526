"""Load generation for the overload, fault and soak tests: open- and closed-loop drivers over
grpc.aio, a recorder of every call's outcome, percentiles and per-window summaries.

A *send* is a zero-argument function returning an awaitable gRPC call (a stub call with its
own deadline); the drivers start sends, the recorder times them and notes their status code.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

Send = Callable[[], Awaitable[Any]]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, nearest rank) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class Outcome:
    """One finished call."""

    kind: str  # what was sent, e.g. "classify", "batch", "bad-pixels"
    started: float  # time.monotonic() when it was sent
    seconds: float  # latency seen by the client
    code: str  # gRPC status code name: "OK", "RESOURCE_EXHAUSTED", ...


@dataclass(frozen=True)
class Window:
    """The calls started in one time window."""

    start: float  # seconds since the recorder's origin
    calls: int
    errors: int  # calls whose code is not in the expected set
    p50: float
    p99: float


@dataclass
class Recorder:
    """Every call's outcome, with the codes that count as errors decided by the caller."""

    origin: float = field(default_factory=time.monotonic)
    outcomes: list[Outcome] = field(default_factory=list)

    async def time(self, kind: str, send: Send) -> Any:
        """Send, wait, record; returns the response, or None when the call failed."""
        started = time.monotonic()
        code, response = "OK", None
        try:
            response = await send()
        except grpc.aio.AioRpcError as error:
            code = error.code().name
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        finally:
            self.outcomes.append(Outcome(kind, started, time.monotonic() - started, code))
        return response

    def select(self, kind: str | None = None, code: str | None = None, since: float = 0.0) -> list[Outcome]:
        """Outcomes of one kind and/or code, started `since` seconds after the origin or later."""
        return [
            o for o in self.outcomes
            if (kind is None or o.kind == kind) and (code is None or o.code == code) and o.started - self.origin >= since
        ]

    def codes(self, kind: str | None = None) -> Counter:
        """How many calls ended with each code."""
        return Counter(o.code for o in self.select(kind))

    def latencies(self, kind: str | None = None, code: str | None = None) -> list[float]:
        """Client-side latencies in seconds."""
        return [o.seconds for o in self.select(kind, code)]

    def windows(self, width: float, expected: frozenset[str] = frozenset({"OK"}), kinds: set[str] | None = None) -> list[Window]:
        """Calls grouped by start time into windows of `width` seconds; p50/p99 of the OK ones."""
        groups: dict[int, list[Outcome]] = {}
        for o in self.outcomes:
            if kinds is None or o.kind in kinds:
                groups.setdefault(int((o.started - self.origin) // width), []).append(o)
        result = []
        for index in sorted(groups):
            group = groups[index]
            ok = [o.seconds for o in group if o.code == "OK"]
            errors = sum(1 for o in group if o.code not in expected)
            result.append(Window(index * width, len(group), errors, percentile(ok, 50), percentile(ok, 99)))
        return result


async def open_loop(send: Send, rate: float, duration: float, recorder: Recorder, kind: str) -> int:
    """Start a call every 1/rate seconds for `duration` seconds, never waiting for answers
    (a late schedule catches up in bursts, so the offered rate holds); returns calls started."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task] = set()
    start, started = loop.time(), 0
    while loop.time() - start < duration:
        due = start + started / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(recorder.time(kind, send))
        pending.add(task)
        task.add_done_callback(pending.discard)
        started += 1
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return started


@dataclass(frozen=True)
class TrafficKind:
    """One kind of call in a mix, with its share of the traffic."""

    kind: str
    weight: float
    send: Send


async def closed_loop(mix: Sequence[TrafficKind], workers: int, stop: asyncio.Event, recorder: Recorder, seed: int = 0) -> None:
    """`workers` loops, each sending one call at a time, its kind drawn by weight, until `stop` is set."""
    weights = [k.weight for k in mix]

    async def worker(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        while not stop.is_set():
            chosen = rng.choices(mix, weights)[0]
            await recorder.time(chosen.kind, chosen.send)

    await asyncio.gather(*(worker(n) for n in range(workers)))


async def for_seconds(seconds: float, *loops: Callable[[asyncio.Event], Awaitable[Any]]) -> None:
    """Start each loop with a shared stop event, set it after `seconds`, wait for all to finish."""
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(loop(stop)) for loop in loops]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*tasks)


MixFactory = Callable[[grpc.aio.Channel], Sequence[TrafficKind]]


class BackgroundLoad:
    """A closed-loop load on its own thread and event loop, for tests that do other things
    meanwhile (change the model folder, send signals). Use as a context manager; `recorder`
    holds every outcome."""

    def __init__(self, target: str, mix: MixFactory, workers: int = 2, options: Sequence[tuple[str, Any]] = ()) -> None:
        self.target, self.mix, self.workers, self.options = target, mix, workers, list(options)
        self.recorder = Recorder()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-load", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            async with grpc.aio.insecure_channel(self.target, options=self.options) as channel:
                self._started.set()
                await closed_loop(self.mix(channel), self.workers, self._stop, self.recorder)

        asyncio.run(main())

    def __enter__(self) -> "BackgroundLoad":
        self._thread.start()
        if not self._started.wait(30):
            raise RuntimeError("the background load did not start")
        return self

    def stop(self) -> Recorder:
        """Stop sending, wait for the calls in flight; returns the recorder."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        return self.recorder

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
