"""Ordered pipelining for streams: handle many items concurrently, answer in arrival order.

Transport-free: `ordered` takes any async iterator and any coroutine function, so a
ClassifyStream over one connection keeps up to `window` digits in flight (they can share
batches) while its responses still come back one per request, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


async def ordered(
    items: AsyncIterator[Item], handle: Callable[[int, Item], Awaitable[Result]], window: int
) -> AsyncIterator[Result]:
    """Yield `handle(index, item)` for each item in order, with at most `window` handled at once.

    The first failure, in order, is raised once every earlier result was yielded; work still
    pending then is cancelled. A failure while reading `items` is raised after the results
    of the items read before it.
    """
    pending: asyncio.Queue[asyncio.Future | None] = asyncio.Queue(maxsize=max(window, 1))

    async def feed() -> None:
        try:
            index = 0
            async for item in items:
                await pending.put(asyncio.ensure_future(handle(index, item)))
                index += 1
        finally:
            await pending.put(None)

    feeder = asyncio.create_task(feed())
    try:
        while (work := await pending.get()) is not None:
            yield await work
        await feeder
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await feeder
        while not pending.empty():
            leftover = pending.get_nowait()
            if leftover is not None:
                leftover.cancel()
