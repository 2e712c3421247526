"""Open-loop replay of labelled digits through an A/B experiment, as live traffic would arrive.

Requests start on a fixed schedule (``rate`` per second) whether or not earlier ones have
answered, so a slow arm cannot slow the offered load down (a closed loop would hide
latency). Each request carries its true digit, so the server counts accuracy per arm, and a
routing key drawn from ``keys`` simulated users, so assignment is sticky per user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from digits.aio import AsyncDigitsClient
from digits.errors import DigitsError

__all__ = ["Sample", "Replay", "replay"]


@dataclass(frozen=True)
class Sample:
    """One replayed request: which arm answered, how long it took, whether it was right."""

    arm: str
    model: str
    version: int
    latency: float  # seconds, measured by the client (network + server)
    correct: bool | None
    error: str = ""  # status code name when the call failed


@dataclass(frozen=True)
class Replay:
    """What a replay sent and got back."""

    samples: list[Sample]
    seconds: float  # from the first request's start to the last answer
    rate: float  # offered requests per second
    keys: int

    @property
    def achieved_rate(self) -> float:
        """Requests answered per second."""
        return len(self.samples) / self.seconds if self.seconds > 0 else 0.0


async def replay(
    client: AsyncDigitsClient,
    images: np.ndarray,
    labels: np.ndarray | None,
    experiment: str,
    *,
    rate: float,
    count: int,
    keys: int = 100,
    seed: int = 0,
    max_in_flight: int = 2000,
    on_answer: Callable[[Sample], None] | None = None,
) -> Replay:
    """Send ``count`` requests at ``rate`` per second through ``experiment``.

    Images are taken in a seeded random order (each once before any repeats); routing keys
    are ``user-0`` .. ``user-{keys-1}``, drawn at random (``keys=0``: no key, random by
    weight). At most ``max_in_flight`` requests are outstanding; past that the schedule waits.
    """
    if rate <= 0 or count < 1 or keys < 0:
        raise ValueError("rate must be > 0, count >= 1 and keys >= 0")
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(images)) for _ in range(-(-count // len(images)))])[:count]
    users = rng.integers(keys, size=count) if keys else None
    slots = asyncio.Semaphore(max_in_flight)

    async def one(i: int) -> Sample:
        index = int(order[i])
        label = int(labels[index]) if labels is not None else None
        key = f"user-{users[i]}" if users is not None else None
        started = time.perf_counter()
        try:
            result = await client.classify(images[index], experiment=experiment, routing_key=key, true_label=label)
        except DigitsError as exc:
            sample = Sample("", "", 0, time.perf_counter() - started, None, exc.code.name)
        else:
            correct = None if label is None else result.digit == label
            sample = Sample(result.arm, result.model, result.version, time.perf_counter() - started, correct)
        finally:
            slots.release()
        if on_answer is not None:
            on_answer(sample)
        return sample

    loop = asyncio.get_running_loop()
    start = loop.time()
    tasks = []
    for i in range(count):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(one(i)))
    samples = await asyncio.gather(*tasks)
    return Replay(list(samples), loop.time() - start, rate, keys)
