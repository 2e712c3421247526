"""Drift detectors with a false-alarm guarantee by construction: e-CUSUM over binned signals.

The e-detector framework of Shin, Ramdas & Rinaldo ("E-detectors: a nonparametric framework for
sequential change detection", 2022). For each signal (predicted class, confidence bin, the
binned input summaries) and each prediction x_n, the e-value

    E_n = q_n(x_n) / p*_n(x_n)

where q_n is a *predictable* plug-in guess of the live bin distribution (exponentially weighted
counts of the predictions before the current batch, shrunk to the reference) and p*_n is its
reverse information projection onto the null set C = {p : l <= p <= u, sum p = 1}, l and u the
Clopper-Pearson bounds of each bin's probability from the reference counts (simultaneous over
the bins at level REFERENCE_RISK). p*_n minimises KL(q_n || p) over the convex set C, so its
first-order condition gives, for every live distribution p in C,
E_p[E_n | past] = sum_k p(k) q_n(k) / p*_n(k) <= sum_k q_n(k) = 1: each E_n is an e-value, and
the product of E's from any start time is a test supermartingale under any p in C.

The detector is the CUSUM e-detector M_n = max(M_{n-1}, 1) E_n (in logs: S_n = max(S_{n-1}, 0)
+ log E_n); it alarms when M_n >= c = THRESHOLD and restarts. It is below the Shiryaev-Roberts
e-detector R_n = (R_{n-1} + 1) E_n restarted at the same times, and R_n + c N_n - n is a
supermartingale (N_n: alarms so far), so on traffic like the reference the expected number of
false alarms in n predictions is at most n / c, for every n. With c = 1e8 and 9 signals: at
most 9 * 8.64e6 / 1e8 = 0.78 expected false alarms per day at 100 predictions/s per version.

The guarantee holds if the live traffic's bins are i.i.d. with a distribution in C, which the
reference bounds make true with probability >= 1 - REFERENCE_RISK per signal over the draw of
the reference; using the reference's point estimate instead would alarm within minutes on clean
traffic, its sampling error looking like drift.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

#: Alarm threshold c of the e-detector: expected false alarms per prediction <= 1 / c.
THRESHOLD = 1e8
#: Probability (per signal) that the reference's bin bounds fail to cover the truth.
REFERENCE_RISK = 1e-4
#: Decay of the plug-in's weighted counts per prediction (memory of ~500 predictions).
DECAY = 1.0 - 1.0 / 500
#: Pseudo-predictions of the reference in the plug-in guess.
PRIOR_STRENGTH = 20.0
#: Most predictions judged by one plug-in guess (longer batches are split).
CHUNK = 256


@cache
def _betaincinv() -> Any:
    # scipy.special, not scipy.stats: ~30 MiB and 0.2 s on first use instead of ~80 MiB and 0.7 s
    from scipy.special import betaincinv

    return betaincinv


def reference_bounds(counts: Sequence[int], risk: float = REFERENCE_RISK) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Clopper-Pearson bounds (lower, upper) of every bin's probability, simultaneous
    at level `risk` (risk / 2K on each side of each of the K bins)."""
    counts = np.asarray(counts, dtype=np.float64)
    total, level = counts.sum(), risk / (2 * len(counts))
    betaincinv = _betaincinv()
    upper = np.where(counts >= total, 1.0, betaincinv(counts + 1, np.maximum(total - counts, 1e-12), 1.0 - level))
    lower = np.where(counts <= 0, 0.0, betaincinv(np.maximum(counts, 1e-12), total - counts + 1, level))
    return lower, upper


def project_to_null(plug_in: np.ndarray, lower: np.ndarray, upper: np.ndarray, offsets: np.ndarray,
                    segment: np.ndarray) -> np.ndarray:
    """Per segment, the reverse information projection of the plug-in q onto the null set
    C = {p : lower <= p <= upper, sum p = 1}: p*(k) = clip(q(k) t, lower, upper), t > 0 such that
    p* sums to 1. For every p in C, sum_k p(k) q(k) / p*(k) <= 1 (the first-order condition of
    min over C of KL(q || p)), so q / p* is an e-value. See `NullProjection`."""
    return NullProjection(lower, upper, offsets, segment)(plug_in)


class NullProjection:
    """`project_to_null` onto one fixed null set, its layout (the segments padded to the longest
    and the bounds in that layout) computed once: a bank projects after every chunk.

    g(t) = sum_k clip(q(k) t, l(k), u(k)) is piecewise linear and increasing in t, with kinks at
    t = l(k)/q(k) and u(k)/q(k): evaluate it at every kink, take the two around 1 and interpolate
    (exact), all segments (and all plug-ins given) at once, padded to the longest segment. t is
    nudged up, so sum p* >= 1: that only lowers the e-values.

    Warm start: the plug-in moves little between chunks, so the bins clipped at a bound usually
    stay the same. With the last call's clipped sets, t = (1 - their bounds' sum) / (the free bins'
    q sum); when every bin falls on the same side of its bounds at that t, g(t) = 1 exactly and t is
    the root. Otherwise (or the first time) the kink search above, for the plug-ins that need it."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray, offsets: np.ndarray, segment: np.ndarray) -> None:
        self.lower, self.upper, self.segment = lower, upper, segment
        self.index = np.arange(len(segment)) - offsets[segment]
        self.shape = (len(offsets), int(self.index.max()) + 1)
        self.low, self.high = np.zeros(self.shape), np.zeros(self.shape)
        self.low[segment, self.index], self.high[segment, self.index] = lower, upper
        self.member = (segment[:, None] == np.arange(len(offsets))).astype(np.float64)  # bin -> segment sums
        self._clipped: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # at l, at u, their bounds' sums

    def __call__(self, plug_in: np.ndarray) -> np.ndarray:
        """p* for the plug-in q (per bin, each segment a point of the null set); q [bins] or, for
        several plug-ins at once, [R, bins]."""
        q = np.atleast_2d(plug_in)
        t = self._warm(q) if self._clipped is not None else np.full((len(q), self.shape[0]), np.nan)
        cold = np.isnan(t).any(axis=1)
        if cold.any():
            t[cold] = self._search(q[cold])
        last = q[-1] * t[-1, self.segment]  # the next call starts from the last plug-in's clipped sets
        at_low, at_high = last <= self.lower, last >= self.upper
        bounds = np.where(at_low, self.lower, 0.0) + np.where(at_high, self.upper, 0.0)
        self._clipped = at_low, at_high, bounds @ self.member
        null = np.clip(q * (t * (1 + 1e-12))[:, self.segment], self.lower, self.upper)
        return null if np.ndim(plug_in) == 2 else null[0]

    def _warm(self, q: np.ndarray) -> np.ndarray:
        """The root t per plug-in and segment from the last call's clipped sets; NaN rows where they changed."""
        at_low, at_high, clipped_sum = self._clipped
        free_sum = np.where(at_low | at_high, 0.0, q) @ self.member
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (1.0 - clipped_sum) / free_sum
        scaled = q * t[:, self.segment]
        same = ((scaled <= self.lower) == at_low).all(axis=1) & ((scaled >= self.upper) == at_high).all(axis=1)
        t[~(same & np.isfinite(t).all(axis=1))] = np.nan  # a segment with no free bin: t is inf or nan
        return t

    def _search(self, plug_in: np.ndarray) -> np.ndarray:
        """The root t of g(t) = 1 per plug-in [R, bins] and segment, by the kinks (before the nudge)."""
        low, high = self.low, self.high
        q = np.zeros((len(plug_in), *self.shape))
        q[:, self.segment, self.index] = plug_in
        with np.errstate(divide="ignore", invalid="ignore"):
            kinks = np.concatenate([np.zeros((*q.shape[:2], 1)), low / q, high / q], axis=2)
        kinks[~np.isfinite(kinks)] = 0.0
        totals = np.clip(q[:, :, None, :] * kinks[..., None], low[:, None, :], high[:, None, :]).sum(axis=3)
        under = totals < 1.0  # g(t) < 1 at t = 0 (sum l < 1); g grows to sum u >= 1
        low_at = np.argmax(np.where(under, kinks, -np.inf), axis=2)[..., None]
        high_at = np.argmin(np.where(under, np.inf, kinks), axis=2)[..., None]
        below, above = (np.take_along_axis(kinks, at, axis=2)[..., 0] for at in (low_at, high_at))
        g_below, g_above = (np.take_along_axis(totals, at, axis=2)[..., 0] for at in (low_at, high_at))
        slope = np.where(above > below, (g_above - g_below) / np.maximum(above - below, 1e-300), 1.0)
        return np.where(slope > 0, below + (1.0 - g_below) / np.maximum(slope, 1e-300), above)


@dataclass(frozen=True)
class DetectorState:
    """One detector's state: log statistic log(M_n), alarms so far and the prediction of the last one."""

    log_statistic: float
    alarms: int
    last_alarm_at: int  # predictions observed when it last alarmed; -1 never


class DetectorBank:
    """Independent e-CUSUM detectors over binned signals, updated a batch at a time.

    Detector d watches one signal with len(reference_counts[d]) bins. `observe` takes the bins of
    a batch of predictions [B, D]; the plug-in guess is fixed for the batch (so it is predictable)
    and updated after it. State is O(total bins): memory does not grow with traffic.
    `bounded=False` puts the reference's point estimate in the place of the null set, which
    voids the guarantee (the simulation shows how badly); the server never uses it.
    """

    def __init__(
        self, reference_counts: Sequence[Sequence[int]], threshold: float = THRESHOLD,
        risk: float = REFERENCE_RISK, decay: float = DECAY, prior_strength: float = PRIOR_STRENGTH,
        bounded: bool = True,
    ) -> None:
        sizes = [len(c) for c in reference_counts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self.segment = np.repeat(np.arange(len(sizes)), sizes)
        counts = [np.asarray(c, dtype=np.float64) for c in reference_counts]
        self.reference = np.concatenate([(c + 0.5) / (c.sum() + 0.5 * len(c)) for c in counts])
        if bounded:
            bounds = [reference_bounds(c, risk) for c in counts]
            self.lower = np.concatenate([b[0] for b in bounds])
            self.upper = np.concatenate([b[1] for b in bounds])
            self._projection = NullProjection(self.lower, self.upper, self.offsets, self.segment)
        else:  # the reference's point estimate as the null: no guarantee (the simulation's contrast)
            self.lower = self.upper = self.reference
        self.log_threshold = float(np.log(threshold))
        self.decay, self.prior_strength = decay, prior_strength
        self.weighted = np.zeros(len(self.segment))  # exponentially weighted live counts per bin
        self.log_statistic = np.zeros(len(sizes))
        self.alarms = np.zeros(len(sizes), dtype=np.int64)
        self.last_alarm_at = np.full(len(sizes), -1, dtype=np.int64)
        self.observed = 0
        self._log_e = self._plug_in_log_e()

    def _plug_in(self, weighted: np.ndarray | None = None) -> np.ndarray:
        """The plug-in guess q from weighted counts (the bank's now, or [R, bins] of several moments)."""
        weighted = self.weighted if weighted is None else weighted
        totals = np.add.reduceat(weighted, self.offsets, axis=-1)[..., self.segment]
        return (weighted + self.prior_strength * self.reference) / (totals + self.prior_strength)

    def null(self, plug_in: np.ndarray | None = None) -> np.ndarray:
        """The denominator p* of the current e-values (per bin, each segment a point of the null set)."""
        if self.lower is self.upper:
            return np.broadcast_to(self.reference, np.shape(plug_in)) if plug_in is not None else self.reference
        return self._projection(self._plug_in() if plug_in is None else plug_in)

    def _plug_in_log_e(self, weighted: np.ndarray | None = None) -> np.ndarray:
        plug_in = self._plug_in(weighted)
        return np.log(plug_in / self.null(plug_in))

    def observe(self, bins: np.ndarray) -> np.ndarray:
        """Feed a batch of predictions' bins [B, D]; returns how many alarms each detector raised.
        A batch longer than CHUNK is judged CHUNK rows at a time: each chunk by the plug-in of the
        predictions before it, so the plug-in is never more than CHUNK predictions stale however
        the caller batches. The chunks' plug-ins and projections are computed together."""
        bins = np.asarray(bins, dtype=np.int64)
        if bins.ndim != 2 or bins.shape[1] != len(self.offsets) or not len(bins):
            return np.zeros(len(self.offsets), dtype=np.int64)
        flat = bins + self.offsets
        chunk = np.arange(len(bins)) // CHUNK
        log_e = self._chunk_log_e(flat, chunk)
        z = log_e[chunk[:, None], flat]  # [B, D] each prediction's log e-value under its chunk's plug-in
        raised = np.zeros(len(self.offsets), dtype=np.int64)
        final, crossed = lindley(z, self.log_statistic, self.log_threshold)
        for d in np.flatnonzero(crossed):
            final[d], at = _restarting(z[:, d], self.log_statistic[d], self.log_threshold)
            raised[d] = len(at)
            self.last_alarm_at[d] = self.observed + at[-1] + 1
        self.log_statistic = final
        self.alarms += raised
        self.observed += len(bins)
        return raised

    def _chunk_log_e(self, flat: np.ndarray, chunk: np.ndarray) -> np.ndarray:
        """[chunks, bins]: row j the log e-values that judge chunk j (the plug-in after chunks < j);
        moves the weighted counts and the next batch's log e-values past every chunk."""
        chunks, width = int(chunk[-1]) + 1, len(self.weighted)
        counts = np.bincount((chunk[:, None] * width + flat).ravel(), minlength=chunks * width).reshape(chunks, width)
        lengths = np.bincount(chunk, minlength=chunks)
        weighted = np.empty((chunks, width))
        for j in range(chunks):
            self.weighted = self.weighted * self.decay ** lengths[j] + counts[j]
            weighted[j] = self.weighted
        after = self._plug_in_log_e(weighted)
        log_e = np.vstack([self._log_e[None], after[:-1]])
        self._log_e = after[-1]
        return log_e

    def state(self, detector: int) -> DetectorState:
        """Detector d's state."""
        return DetectorState(float(self.log_statistic[detector]), int(self.alarms[detector]),
                             int(self.last_alarm_at[detector]))

    def moved(self, detector: int) -> tuple[int, float, float]:
        """The bin whose live share rose most against the reference: (bin, live share, reference share)."""
        start = self.offsets[detector]
        stop = start + int((self.segment == detector).sum())
        live = self._plug_in()[start:stop]
        reference = self.reference[start:stop]
        k = int(np.argmax(live / reference))
        return k, float(live[k]), float(reference[k])


def cusum_path(z: np.ndarray, start: np.ndarray) -> np.ndarray:
    """S_n = max(S_{n-1}, 0) + z_n down each column of z [B, D] from S_0 = start, vectorised:
    S_n = Z_n + max(S_0, -min_{k<n} Z_k) with Z the running sum (Z_0 = 0)."""
    running = np.cumsum(z, axis=0)
    before = np.vstack([np.zeros((1, z.shape[1])), running[:-1]])
    return running + np.maximum(start, -np.minimum.accumulate(before, axis=0))


def lindley(z: np.ndarray, start: np.ndarray, log_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The last S of `cusum_path` and, per column, whether any S_n reached log_threshold (those
    columns alarmed and need `_restarting`)."""
    path = cusum_path(z, start)
    return path[-1].copy(), (path >= log_threshold).any(axis=0)


def _restarting(z: np.ndarray, start: float, log_threshold: float) -> tuple[float, list[int]]:
    """One column's CUSUM restarted at 0 after each alarm: (last S, indices of the alarms). A plain
    loop: only columns that crossed come here, and under a heavy shift a detector fires every few
    predictions, where one pass in Python beats a numpy pass per restart."""
    alarms: list[int] = []
    s = start
    for n, step in enumerate(z.tolist()):
        s = (max(0.0, s)) + step
        if s >= log_threshold:
            alarms.append(n)
            s = 0.0
    return s, alarms
