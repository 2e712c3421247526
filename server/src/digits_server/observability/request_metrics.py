"""The request path's metrics in plain Python numbers, exported by a scrape-time collector.

prometheus_client's metric objects take a lock and walk their label checks on every update,
and a histogram `observe()` loops over its buckets in Python: ~1-3 us per update, ~10 updates
per request. Here a counter series is one float in a dict and a histogram series one list of
bucket counts plus a sum; `bisect` finds the bucket. `FastMetricsCollector.collect()` turns
them into the same families (names, label names, types, bucket bounds) prometheus_client
would export, at scrape time. Updates run on the event loop; a scrape from another thread
reads copies (`list(...)`), so it never sees a dict change size under it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Key = tuple[str, ...]


class FastCounter:
    """A labelled counter: {label values: value}."""

    kind = "counter"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.values: dict[Key, float] = {}

    def inc(self, key: Key, amount: float = 1) -> None:
        """Add `amount` to one series (made at 0 first if new)."""
        values = self.values
        values[key] = values.get(key, 0) + amount

    def touch(self, key: Key) -> None:
        """Make a series exist at 0 (so rate() sees its first increase)."""
        self.values.setdefault(key, 0)

    def collect(self) -> list[Metric]:
        """This counter as a prometheus_client family."""
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, value in list(self.values.items()):
            family.add_metric(key, float(value))
        return [family]


class FastGauge(FastCounter):
    """A labelled gauge: {label values: value}; series can be removed."""

    kind = "gauge"

    def set(self, key: Key, value: float) -> None:
        """Set one series."""
        self.values[key] = value

    def remove(self, key: Key) -> None:
        """Drop one series, if present."""
        self.values.pop(key, None)

    def collect(self) -> list[Metric]:
        """This gauge as a prometheus_client family."""
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, value in list(self.values.items()):
            family.add_metric(key, float(value))
        return [family]


class FastHistogram:
    """A labelled histogram: {label values: [count per bucket (+Inf last)..., sum]}."""

    kind = "histogram"

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]) -> None:
        self.name, self.documentation, self.labelnames = name, documentation, list(labelnames)
        self.bounds = [float(b) for b in buckets]
        self._le = [floatToGoString(b) for b in self.bounds] + ["+Inf"]
        self.series: dict[Key, list[float]] = {}

    def _new(self, key: Key) -> list[float]:
        row = self.series[key] = [0] * (len(self.bounds) + 2)  # buckets, +Inf, then the sum
        return row

    def observe(self, key: Key, value: float, count: int = 1) -> None:
        """Observe `value` `count` times (prometheus_client counts v in the first bucket with bound >= v)."""
        row = self.series.get(key) or self._new(key)
        row[bisect_left(self.bounds, value)] += count
        row[-1] += value * count

    def observe_counts(self, key: Key, counts: Iterable[int], total: float) -> None:
        """Add per-bucket counts (len(bounds) + 1, +Inf last) and their sum, e.g. from numpy."""
        row = self.series.get(key) or self._new(key)
        for i, count in enumerate(counts):
            if count:
                row[i] += count
        row[-1] += total

    def touch(self, key: Key) -> None:
        """Make a series exist with no observations."""
        if key not in self.series:
            self._new(key)

    def collect(self) -> list[Metric]:
        """This histogram as a prometheus_client family (cumulative buckets, _count, _sum)."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, row in list(self.series.items()):
            row = list(row)
            cumulative, buckets = 0.0, []
            for le, count in zip(self._le, row[:-1]):
                cumulative += count
                buckets.append((le, cumulative))
            family.add_metric(key, buckets, float(row[-1]))
        return [family]


Fast = FastCounter | FastGauge | FastHistogram


class FastMetricsCollector(Collector):
    """Exports a set of fast metrics when the registry is scraped."""

    def __init__(self, metrics: Sequence[Fast]) -> None:
        self.metrics = list(metrics)

    def describe(self) -> list[Metric]:
        """The families' names and types without samples (the registry checks names with it)."""
        empty: list[Metric] = []
        for metric in self.metrics:
            if isinstance(metric, FastHistogram):
                empty.append(HistogramMetricFamily(metric.name, metric.documentation, labels=metric.labelnames))
            elif isinstance(metric, FastGauge):
                empty.append(GaugeMetricFamily(metric.name, metric.documentation, labels=metric.labelnames))
            else:
                empty.append(CounterMetricFamily(metric.name, metric.documentation, labels=metric.labelnames))
        return empty

    def collect(self) -> Iterator[Metric]:
        """Every family with its current samples."""
        for metric in self.metrics:
            yield from metric.collect()
