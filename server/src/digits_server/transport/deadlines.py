"""A call's deadline, read from its gRPC context in the form the data plane takes."""

from __future__ import annotations

import time

import grpc


def deadline_of(context: grpc.aio.ServicerContext) -> float | None:
    """The call's deadline as a time.monotonic() value, or None when the client set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining
