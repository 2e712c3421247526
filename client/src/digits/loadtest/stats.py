"""Recording and summarising a `digits bench` run: latency percentiles, rates, errors by
status code, the client's own CPU; rendered as a table or one JSON document."""

from __future__ import annotations

import resource
import time
from collections import Counter
from typing import Any

import numpy as np

__all__ = ["Recorder", "summary", "render_table"]

PERCENTILES = (50, 90, 99)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Recorder:
    """Collects per-request latencies and status codes inside the measured window."""

    def __init__(self, images_per_request: int = 1) -> None:
        self.images_per_request = images_per_request
        self.latencies: list[float] = []
        self.codes: Counter[str] = Counter()
        self.request_bytes = 0
        self._start = self._end = 0.0
        self._cpu_start = self._cpu_end = self._cpu_at = 0.0

    @property
    def count(self) -> int:
        """Requests recorded so far (any status)."""
        return sum(self.codes.values())

    def begin(self, at: float) -> None:
        """The measured window starts at perf_counter() time `at` (after the warm-up)."""
        self._start = at
        self._cpu_start = _cpu_seconds()
        self._cpu_at = time.perf_counter()

    def add(self, seconds: float, code: str) -> None:
        """One finished request."""
        self.latencies.append(seconds)
        self.codes[code] += 1

    def end(self) -> None:
        """The measured window ends now."""
        self._end = time.perf_counter()
        self._cpu_end = _cpu_seconds()

    def elapsed_so_far(self) -> float:
        """Seconds since the measured window started (0 during the warm-up)."""
        return max(time.perf_counter() - self._start, 0.0) if self._start else 0.0

    @property
    def elapsed(self) -> float:
        """Seconds in the measured window."""
        return max(self._end - self._start, 1e-9)

    @property
    def cpu_percent(self) -> float:
        """Client process CPU over the run (warm-up included), 100 = one core busy."""
        wall = max(self._end - self._cpu_at, 1e-9)
        return 100.0 * (self._cpu_end - self._cpu_start) / wall


def summary(recorder: Recorder, scenario: dict[str, Any] | None = None) -> dict[str, Any]:
    """The run as one JSON-ready dict (latencies in milliseconds)."""
    ok = recorder.codes.get("OK", 0)
    lat = np.asarray(recorder.latencies, dtype=np.float64) * 1000.0
    if len(lat):
        quantiles = np.percentile(lat, PERCENTILES)
        latency = {f"p{p}": round(float(q), 4) for p, q in zip(PERCENTILES, quantiles)}
        latency.update(mean=round(float(lat.mean()), 4), max=round(float(lat.max()), 4))
    else:
        latency = {f"p{p}": None for p in PERCENTILES} | {"mean": None, "max": None}
    return {
        "scenario": scenario or {},
        "requests": recorder.count,
        "ok": ok,
        "errors": {code: n for code, n in sorted(recorder.codes.items()) if code != "OK"},
        "seconds": round(recorder.elapsed, 4),
        "requests_per_second": round(ok / recorder.elapsed, 2),
        "images_per_second": round(ok * recorder.images_per_request / recorder.elapsed, 2),
        "latency_ms": latency,
        "request_bytes": recorder.request_bytes,
        "client_cpu_percent": round(recorder.cpu_percent, 1),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_table(result: dict[str, Any], title: str = "") -> str:
    """A small human-readable table of one run."""
    lat = result["latency_ms"]
    errors = ", ".join(f"{code} {n}" for code, n in result["errors"].items()) or "none"
    rows = [
        ("requests", f"{result['requests']:,} in {result['seconds']:.1f} s ({result['ok']:,} OK)"),
        ("requests/s", f"{result['requests_per_second']:,.1f}"),
        ("images/s", f"{result['images_per_second']:,.1f}"),
        ("latency ms", f"p50 {_ms(lat['p50'])}  p90 {_ms(lat['p90'])}  p99 {_ms(lat['p99'])}  max {_ms(lat['max'])}"),
        ("errors", errors),
        ("client CPU", f"{result['client_cpu_percent']:.0f}% of one core"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [title] if title else []
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)
