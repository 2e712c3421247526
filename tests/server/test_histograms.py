"""The request path's fast metrics (observability/request_metrics.py) export exactly what
prometheus_client's own Counter, Gauge and Histogram would for the same updates: same family
names, types, label names, samples and values (bulk bucket counts included)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from digits_server.observability.histograms import bucket_counts
from digits_server.observability.request_metrics import FastCounter, FastGauge, FastHistogram, FastMetricsCollector

BUCKETS = (0.1, 0.5, 0.9, 0.99, 1.0)


def samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples if not s.name.endswith("_created")}


def families(registry: CollectorRegistry) -> dict:
    return {m.name: (m.type, m.documentation) for m in registry.collect()}


def assert_same(expected: CollectorRegistry, got: CollectorRegistry) -> None:
    assert families(expected) == families(got)
    want, have = samples(expected), samples(got)
    assert want.keys() == have.keys()
    for key, value in want.items():
        assert np.isclose(have[key], value, rtol=1e-12, atol=1e-9), (key, have[key], value)


values_lists = st.lists(st.one_of(st.sampled_from(BUCKETS), st.floats(-1, 2, allow_nan=False)), max_size=60)


@settings(max_examples=150, deadline=None)
@given(values_lists, values_lists)
def test_a_fast_histogram_equals_prometheus_clients_one_value_or_many_at_a_time(single: list[float], bulk: list[float]) -> None:
    disable_created_metrics()
    reference, fast = CollectorRegistry(), CollectorRegistry()
    expected = Histogram("confidence", "c", ["model"], buckets=BUCKETS, registry=reference)
    expected.labels("m")  # the series exists (empty) in both, as once a request was served
    for value in single + bulk:
        expected.labels("m").observe(value)
    histogram = FastHistogram("confidence", "c", ["model"], BUCKETS)
    fast.register(FastMetricsCollector([histogram]))
    for value in single:
        histogram.observe(("m",), value)
    array = np.array(bulk, dtype=np.float64)
    histogram.observe_counts(("m",), bucket_counts(histogram.bounds, array), float(array.sum()))
    assert_same(reference, fast)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5), st.integers(-3, 3)), max_size=40))
def test_fast_counters_and_gauges_equal_prometheus_clients(updates: list[tuple[str, int, int]]) -> None:
    disable_created_metrics()
    reference, fast = CollectorRegistry(), CollectorRegistry()
    counter = Counter("things_total", "t", ["kind"], registry=reference)
    gauge = Gauge("level", "l", ["kind"], registry=reference)
    repeated = Histogram("wait_seconds", "w", ["kind"], buckets=BUCKETS, registry=reference)
    fast_counter, fast_gauge = FastCounter("things_total", "t", ["kind"]), FastGauge("level", "l", ["kind"])
    fast_repeated = FastHistogram("wait_seconds", "w", ["kind"], BUCKETS)
    fast.register(FastMetricsCollector([fast_counter, fast_gauge, fast_repeated]))
    for kind, amount, delta in updates:
        counter.labels(kind).inc(amount)
        fast_counter.inc((kind,), amount)
        gauge.labels(kind).inc(delta)
        fast_gauge.inc((kind,), delta)
        for _ in range(amount):  # observe(value, count) = count observe() calls
            repeated.labels(kind).observe(delta / 4)
        if amount:
            fast_repeated.observe((kind,), delta / 4, amount)
    if updates:
        gauge.remove(updates[0][0])
        fast_gauge.remove((updates[0][0],))
    assert_same(reference, fast)
