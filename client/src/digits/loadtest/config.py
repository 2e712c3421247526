"""What `digits bench` sends and when it stops: the configuration, the pre-serialized requests
and the warm-up/stop clock, shared by the gRPC driver (`driver`) and the REST one (`rest`)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from digits.loadtest.stats import Recorder

__all__ = ["DISTINCT_REQUESTS", "MODES", "PROTOCOLS", "BenchConfig", "Clock", "RequestSet"]

MODES = ("unary", "batch", "stream")
PROTOCOLS = ("digits.v1", "v2", "v2-rest", "v2-rest-json")
SERVICE = "/digits.v1.DigitClassifier/"
V2_METHOD = "/inference.GRPCInferenceService/ModelInfer"
#: Distinct pre-built requests cycled through (different digits, same size).
DISTINCT_REQUESTS = 64


@dataclass(frozen=True)
class BenchConfig:
    """What to send, how hard and for how long."""

    target: str
    mode: str = "unary"
    batch_size: int = 1  # images per ClassifyBatch request (mode "batch")
    concurrency: int = 1  # callers (closed loop) or streams (stream mode)
    rate: float | None = None  # requests/s for an open loop; None = closed loop
    duration: float | None = 10.0  # measured seconds (after warm-up); None when `count` is set
    count: int | None = None  # measured requests; wins over duration
    warmup: float = 1.0
    window: int = 32  # stream mode: most requests in flight per stream
    model: str = ""
    version: int | None = None
    label: str = ""
    experiment: str = ""
    timeout: float = 10.0
    token: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_outstanding: int = 10_000  # open loop: requests beyond this many in flight are dropped
    protocol: str = "digits.v1"  # or "v2": Open Inference Protocol ModelInfer (unary and batch modes); "v2-rest": its REST form
    lb_policy: str | None = None  # None: round_robin for several servers (dns:///, address lists), else pick_first
    encoded: tuple[bytes, ...] = ()  # image files (PNG, JPEG...) to send as Image.encoded instead of raw pixels

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.concurrency < 1 or self.batch_size < 1 or self.window < 1:
            raise ValueError("concurrency, batch_size and window must be >= 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError(f"rate: must be > 0, got {self.rate}")
        if self.count is None and (self.duration is None or self.duration <= 0):
            raise ValueError("give a duration > 0 or a count")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol: must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.protocol != "digits.v1" and (self.mode == "stream" or not self.model or self.experiment):
            raise ValueError(f"--protocol {self.protocol} drives ModelInfer: give --model, use --mode unary or batch")
        if self.protocol != "digits.v1" and self.encoded:
            raise ValueError(f"--image-file sends digits.v1 Image.encoded; not with --protocol {self.protocol}")

    @property
    def images_per_request(self) -> int:
        """Images carried by one request."""
        return self.batch_size if self.mode == "batch" else 1

    @property
    def method(self) -> str:
        """The RPC driven."""
        if self.protocol != "digits.v1":
            return "ModelInfer"
        return {"unary": "Classify", "batch": "ClassifyBatch", "stream": "ClassifyStream"}[self.mode]

    @property
    def path(self) -> str:
        """The RPC's full gRPC method path."""
        return V2_METHOD if self.protocol == "v2" else SERVICE + self.method


@dataclass
class RequestSet:
    """Serialized requests to cycle through (all of the same size)."""

    payloads: list[bytes]
    _cycle: Iterator[bytes] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._cycle = itertools.cycle(self.payloads)

    def next(self) -> bytes:
        """The next payload, round robin."""
        return next(self._cycle)

    @property
    def size(self) -> int:
        """Bytes of one request."""
        return len(self.payloads[0])


class Clock:
    """Warm-up and stop logic shared by every driver."""

    def __init__(self, config: BenchConfig, recorder: Recorder) -> None:
        self.config = config
        self.recorder = recorder
        self.started = time.perf_counter()
        self.measure_from = self.started + config.warmup
        self.stop_at = None if config.count is not None else self.measure_from + (config.duration or 0)

    def running(self) -> bool:
        """False once the duration is over or `count` requests were recorded."""
        if self.config.count is not None:
            return self.recorder.count < self.config.count
        return time.perf_counter() < (self.stop_at or 0)

    def record(self, sent: float, code: str) -> None:
        """Record one finished request that was sent (or scheduled) at `sent`."""
        now = time.perf_counter()
        if sent >= self.measure_from:
            self.recorder.add(now - sent, code)
