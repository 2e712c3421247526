"""Exact counter totals from Prometheus' raw samples: every increase of a counter since a moment,
across counter resets (a replica restarted, its counters back at 0), summed client-side.

PromQL's `increase()` is not exact: it extrapolates to the window's edges and gives fractions
(e.g. 99.7 for 100 requests). Here a range selector `metric{...}[W]` returns each series' raw
samples and one series' total since `start` is

    sum over consecutive samples of (v - previous) if v >= previous, else v   (a reset: counting from 0)

with `previous` the series' last sample before `start` (0 when the series began after `start`: a
replica that learned of the experiment, or restarted, creates its series at 0). A sample whose target's
`process_start_time_seconds` (same scrape, same timestamp) differs from the previous sample's is a reset
too, even when the new process's count has already overtaken the old one's by its first scrape. What a replica counted
after its last scrape before it stopped is lost (at most one scrape interval of its traffic); a
graceful stop that waits one scrape interval loses nothing.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence

Samples = list[tuple[float, float]]  # (unix time, value), oldest first
RangeQuery = Callable[[str], list[tuple[dict[str, str], Samples]]]
LOOKBACK_SECONDS = 300  # samples this long before `start` are read too: each series' baseline
PROCESS_START = "process_start_time_seconds"  # every replica exports it (prometheus_client's ProcessCollector)


class PrometheusError(Exception):
    """Prometheus could not be asked, or refused the query; the message says which."""


def prometheus_api(url: str, expr: str, timeout: float = 10.0) -> dict:
    """GET /api/v1/query of `expr` at `url` (http://host:9090); the answer's `data`."""
    address = f"{url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(address, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    except (OSError, ValueError) as exc:
        raise PrometheusError(f"--prometheus {url}: {exc}") from None
    if body.get("status") != "success":
        raise PrometheusError(f"--prometheus {url}: {body.get('errorType')}: {body.get('error')} ({expr})")
    return body["data"]


def prometheus_range(url: str, timeout: float = 10.0) -> RangeQuery:
    """A function returning every series' raw samples of a range selector (`metric{...}[60s]`)."""

    def query(expr: str) -> list[tuple[dict[str, str], Samples]]:
        data = prometheus_api(url, expr, timeout)
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"--prometheus {url}: {expr} is not a range selector")
        return [(r["metric"], [(float(t), float(v)) for t, v in r["values"]]) for r in data["result"]]

    return query


def increase_since(samples: Sequence[tuple[float, float]], start: float,
                   started: Mapping[float, float] | None = None) -> float:
    """One counter series' exact increase after `start` (see the module docstring). `started`: the
    scraped process's start time at each scrape's timestamp (`process_start_time_seconds` of the same
    target), which also reveals a restart whose new counts overtook the old ones before the first scrape."""
    started = started or {}
    previous, previous_start, total = 0.0, None, 0.0
    for moment, value in samples:
        if math.isnan(value):
            continue
        process = started.get(moment)
        restarted = process is not None and previous_start is not None and process != previous_start
        previous_start = process if process is not None else previous_start
        if moment < start:
            previous = value  # the baseline: counted before the experiment began
            continue
        total += value if restarted or value < previous else value - previous
        previous = value
    return total


def window(start: float, now: float | None = None) -> str:
    """The range selector's duration that reaches LOOKBACK_SECONDS before `start`."""
    now = time.time() if now is None else now
    return f"{max(1, math.ceil(now - start + LOOKBACK_SECONDS))}s"


def process_starts(query: RangeQuery, start: float) -> dict[tuple[str, str], dict[float, float]]:
    """{(job, instance): {scrape timestamp: the process's start time}} of every scraped target."""
    return {(labels.get("job", ""), labels.get("instance", "")): dict(samples)
            for labels, samples in query(f"{PROCESS_START}[{window(start)}]")}


def totals_since(query: RangeQuery, selector: str, start: float, by: Sequence[str],
                 starts: Mapping[tuple[str, str], Mapping[float, float]] | None = None) -> dict[tuple[str, ...], float]:
    """{values of `by`: the exact increase since `start` summed over the series with those values};
    `starts` (process_starts) makes restarts certain to count as resets."""
    out: dict[tuple[str, ...], float] = {}
    for labels, samples in query(f"{selector}[{window(start)}]"):
        key = tuple(labels.get(name, "") for name in by)
        started = (starts or {}).get((labels.get("job", ""), labels.get("instance", "")))
        out[key] = out.get(key, 0.0) + increase_since(samples, start, started)
    return out


def identities(query: RangeQuery, selector: str, start: float) -> set[str]:
    """The scrape targets (`instance` labels) that reported `selector` since `start`."""
    return {labels.get("instance", "") for labels, samples in query(f"{selector}[{window(start)}]")
            if any(moment >= start for moment, _ in samples)}
