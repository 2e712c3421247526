"""observe_many leaves a prometheus_client histogram exactly as one observe() per value would:
same bucket counts, count and sum (this also guards the library internals it relies on)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from digits_server.observability.histograms import observe_many

BUCKETS = (0.1, 0.5, 0.9, 0.99, 1.0)


def samples(registry: CollectorRegistry) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect() for s in metric.samples if not s.name.endswith("_created")}


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(BUCKETS), st.floats(-1, 2, allow_nan=False)), max_size=60))
def test_observe_many_equals_observe_one_by_one(values: list[float]) -> None:
    one_by_one, bulk = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("confidence", "c", ["model"], buckets=BUCKETS, registry=one_by_one).labels("m")
    for value in values:
        reference.observe(value)
    observe_many(Histogram("confidence", "c", ["model"], buckets=BUCKETS, registry=bulk).labels("m"), np.array(values))
    expected, got = samples(one_by_one), samples(bulk)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert np.isclose(got[key], value, rtol=1e-12, atol=1e-9), (key, got[key], value)
