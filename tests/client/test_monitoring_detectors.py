"""digits.monitoring.detectors: the e-CUSUM detectors, against a plain loop and exact arithmetic,
and their false alarms on clean traffic by a fixed-seed simulation (the small version of
bench/monitoring_false_alarms.py)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from digits.monitoring.detectors import (
    CHUNK,
    REFERENCE_RISK,
    THRESHOLD,
    DetectorBank,
    NullProjection,
    cusum_path,
    project_to_null,
    reference_bounds,
)
from digits.monitoring.simulation import simulate_clean

UNIFORM = np.full(10, 0.1)


def _loop_cusum(z: np.ndarray, start: float, log_threshold: float) -> tuple[float, list[int]]:
    """The CUSUM recursion written the plain way, one step at a time (the oracle of the vectorised one)."""
    s, alarms = start, []
    for n, step in enumerate(z):
        s = max(s, 0.0) + step
        if s >= log_threshold:
            alarms.append(n)
            s = 0.0
    return s, alarms


def test_vectorised_cusum_equals_the_loop() -> None:
    rng = np.random.default_rng(3)
    z = rng.normal(0.1, 1.0, (500, 6))
    start = rng.normal(0, 2, 6)
    path = cusum_path(z, start)
    for d in range(6):
        s, expected = start[d], []
        for step in z[:, d]:
            s = max(s, 0.0) + step
            expected.append(s)
        assert np.allclose(path[:, d], expected)


def test_bank_alarms_and_restarts_like_the_loop() -> None:
    """A bank fed one batch whose plug-in is fixed: its alarms and statistic are the loop's."""
    rng = np.random.default_rng(4)
    reference = [rng.multinomial(1000, UNIFORM), rng.multinomial(1000, [0.5, 0.3, 0.2])]
    bank = DetectorBank(reference, threshold=50.0)

    def batch() -> np.ndarray:
        return np.column_stack([np.where(rng.random(200) < 0.5, 3, rng.integers(0, 10, 200)), rng.integers(0, 3, 200)])

    assert bank.observe(batch()).sum() == 0  # the first batch is judged by the reference-only guess: no alarm
    start = bank.log_statistic.copy()
    bins = batch()
    z = bank._log_e[bins + bank.offsets]
    raised = bank.observe(bins)
    for d in range(2):
        s, alarms = _loop_cusum(z[:, d], start[d], np.log(50.0))
        assert raised[d] == len(alarms) and bank.state(d).log_statistic == pytest.approx(s)
        if alarms:
            assert bank.state(d).last_alarm_at == 200 + alarms[-1] + 1
    assert raised[0] > 5  # digit 3 at 55% against 10%: many alarms at this low threshold


def test_a_long_batch_is_judged_in_chunks() -> None:
    """One 1,000-prediction batch of a shifted stream still alarms: the plug-in is updated every
    CHUNK predictions, not once per batch (a monitor flushing rarely would otherwise never alarm)."""
    bank = DetectorBank([np.full(10, 150)])
    assert bank.observe(np.full((1000, 1), 3)).sum() > 0


@pytest.mark.parametrize("shifted", [False, True])
def test_a_long_batch_equals_its_chunks_fed_one_by_one(shifted: bool) -> None:
    """`observe` judges all the chunks of a long batch in one vectorised pass: its alarms, their
    positions, the statistics and the next plug-in equal those of a bank fed the same predictions
    CHUNK at a time (the plain way), on clean traffic and on a shift that alarms many times."""
    rng = np.random.default_rng(11)
    reference = [rng.multinomial(1500, rng.dirichlet(np.ones(k))) for k in (10, 12, 4)]
    live = [c / c.sum() for c in reference]
    if shifted:
        live = [0.5 * p + 0.5 * np.roll(p, 1) for p in live]
    vectorised, plain = DetectorBank(reference, threshold=1e4), DetectorBank(reference, threshold=1e4)
    for size in (5000, 300, 4096, 1, 700):
        bins = np.column_stack([rng.choice(len(p), size, p=p) for p in live])
        raised = vectorised.observe(bins)
        expected = sum(plain.observe(bins[start:start + CHUNK]) for start in range(0, size, CHUNK))
        assert np.array_equal(raised, expected)
        assert np.array_equal(vectorised.last_alarm_at, plain.last_alarm_at)
        np.testing.assert_allclose(vectorised.log_statistic, plain.log_statistic, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(vectorised._log_e, plain._log_e, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(vectorised.weighted, plain.weighted, rtol=1e-12)
    assert (vectorised.alarms.sum() > 10) == shifted


def test_reference_bounds_are_exact_clopper_pearson() -> None:
    """l(k) and u(k) are the p at which the binomial tails of n_k equal the per-side risk (exact binomial arithmetic)."""
    counts = np.array([0, 3, 50, 447, 500])
    lower, upper = reference_bounds(counts, risk=0.01)
    total, side = counts.sum(), 0.01 / (2 * len(counts))
    for n_k, low, high in zip(counts, lower, upper):
        assert stats.binom.cdf(n_k, total, high) == pytest.approx(side, rel=1e-6)
        if n_k:
            assert stats.binom.sf(n_k - 1, total, low) == pytest.approx(side, rel=1e-6)
        else:
            assert low == 0


def test_each_e_value_has_expectation_at_most_one_anywhere_in_the_null_set() -> None:
    """E_p[q(x)/p*(x)] = sum_k p(k) q(k) / p*(k) <= 1 for every p in C = {l <= p <= u, sum 1},
    computed exactly (a sum over the bins), for plug-ins the bank actually reached and truths
    spread over C (its corners included); p* itself lies in C."""
    rng = np.random.default_rng(5)
    reference = rng.multinomial(800, rng.dirichlet(np.ones(8)), size=1)
    bank = DetectorBank(reference)
    lower, upper = bank.lower, bank.upper
    checked = 0
    for _ in range(50):
        bank.observe(np.full((int(rng.integers(1, 40)), 1), rng.integers(0, 3)))  # push the plug-in around
        plug_in = bank._plug_in()
        null = bank.null()
        assert plug_in.sum() == pytest.approx(1.0) and 1.0 <= null.sum() <= 1.0 + 1e-9
        assert (null >= lower - 1e-15).all() and (null <= upper + 1e-15).all()
        for _ in range(40):  # a point of C: start at l, pour the remaining mass into random bins up to u
            truth = lower.copy()
            for k in rng.permutation(8):
                truth[k] += min(upper[k] - lower[k], 1.0 - truth.sum())
            assert truth.sum() == pytest.approx(1.0)
            assert (truth * plug_in / null).sum() <= 1.0 + 1e-9
            checked += 1
    assert checked == 2000


def test_warm_started_projection_equals_the_kink_search() -> None:
    """The bank's projection reuses the last clipped sets (warm start); on every plug-in a bank
    reaches, clean or shifted, it equals a fresh kink search, and both paths are taken."""
    rng = np.random.default_rng(8)
    reference = [rng.multinomial(n, rng.dirichlet(np.ones(k))) for n, k in ((600, 10), (900, 6), (400, 12))]
    bank = DetectorBank(reference)
    searches = 0
    search = NullProjection._search

    def counting(self: NullProjection, plug_in: np.ndarray) -> np.ndarray:
        nonlocal searches
        searches += 1
        return search(self, plug_in)

    NullProjection._search = counting  # type: ignore[method-assign]
    try:
        calls = 0
        for step in range(120):
            shifted = step >= 60  # the second half: every signal stuck in bin 0 (the clipped sets change)
            bins = np.zeros((int(rng.integers(1, 50)), 3), dtype=np.int64) if shifted else np.column_stack(
                [rng.choice(len(c), size=30, p=c / c.sum()) for c in reference])
            bank.observe(bins)
            plug_in = bank._plug_in()
            warm = bank.null(plug_in)
            calls += 1
            cold = project_to_null(plug_in, bank.lower, bank.upper, bank.offsets, bank.segment)
            np.testing.assert_allclose(warm, cold, rtol=1e-9, atol=1e-15)
            for d in range(len(reference)):
                assert 1.0 <= warm[bank.segment == d].sum() <= 1.0 + 1e-9
    finally:
        NullProjection._search = search  # type: ignore[method-assign]
    cold_searches = 120  # one per project_to_null above (a fresh instance always searches)
    bank_searches = searches - cold_searches
    assert 2 <= bank_searches <= calls // 4, (bank_searches, calls)  # mostly warm (of 2 per step), yet it falls back


def test_clean_traffic_false_alarms_stay_under_the_guarantee() -> None:
    """Fixed-seed simulation: 200 streams x 20,000 clean predictions per threshold; the mean false
    alarms per stream is at most length / c, the guarantee. An exactly known reference (huge)
    makes the bound as tight as it gets; a 500-digit reference with point estimates instead of
    the bounds breaks it by orders of magnitude (the test can fail)."""
    for threshold in (5.0, 20.0, 100.0):
        exact = simulate_clean(UNIFORM, 10**9, 200, 20_000, threshold=threshold, seed=1)
        assert 0 < exact.per_stream <= exact.bound
        sampled = simulate_clean(UNIFORM, 500, 200, 20_000, threshold=threshold, seed=2)
        assert sampled.per_stream <= sampled.bound
    production = simulate_clean(UNIFORM, 500, 100, 20_000, seed=3)
    assert production.alarms.sum() == 0 and production.threshold == THRESHOLD
    naive = simulate_clean(UNIFORM, 500, 100, 20_000, seed=3, bounded=False)
    assert naive.per_stream > 100 * naive.bound


def test_a_three_class_stream_alarms_within_a_hundred_predictions() -> None:
    shifted = np.array([1, 1, 0, 0, 0, 0, 0, 1, 0, 0], dtype=float)
    run = simulate_clean(UNIFORM, 500, 50, 100, seed=4, shifted=shifted, batch=1)
    assert (run.alarms > 0).all()


def test_memory_does_not_grow_with_traffic() -> None:
    bank = DetectorBank([np.full(12, 40)] * 9, risk=REFERENCE_RISK)
    sizes = [a.nbytes for a in (bank.weighted, bank.log_statistic, bank._log_e)]
    for _ in range(20):
        bank.observe(np.random.default_rng(0).integers(0, 12, (256, 9)))
    assert [a.nbytes for a in (bank.weighted, bank.log_statistic, bank._log_e)] == sizes
    assert bank.observed == 20 * 256
