"""Runs model calls off the event loop. `DirectRunner` makes one model call per request;
a batching runner with the same `run` signature can replace it."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Executor
from typing import Protocol

import numpy as np

from digits_server.core.domain import Timings
from digits_server.core.loaded_model import LoadedModel


class ModelRunner(Protocol):
    """Computes probabilities for a request's images with a loaded model version."""

    async def run(self, model: LoadedModel, images: np.ndarray, deadline: float | None) -> tuple[np.ndarray, Timings]:
        """Probabilities float32 [N,10] for uint8 images [N,28,28]; `deadline` is a time.monotonic() value."""
        ...


class DirectRunner:
    """One model call per request, in a thread pool, so the event loop keeps accepting."""

    def __init__(self, executor: Executor) -> None:
        self._executor = executor

    async def run(self, model: LoadedModel, images: np.ndarray, deadline: float | None) -> tuple[np.ndarray, Timings]:
        """See ModelRunner.run."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        probabilities = await loop.run_in_executor(self._executor, model.predict, images)
        return probabilities, Timings(0.0, time.perf_counter() - started, len(images))
