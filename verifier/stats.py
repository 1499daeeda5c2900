"""Paired A/B benchmark statistics (DESIGN §5.5; docs/PROTOCOL.md §Statistics).

Input: K pairs ``(parent_ns, candidate_ns)`` of positive integers, each pair measured back to
back in random order. Output: the candidate/parent ratio as a point estimate and a confidence
interval, in integer parts per million, and whether the interval shows an improvement.

Method (the reasons are in docs/PROTOCOL.md §Statistics): on the per-pair log ratios
``d_i = ln(candidate_i / parent_i)``, the Hodges–Lehmann estimate (median of the Walsh averages
``(d_i + d_j) / 2, i <= j``) and the distribution-free interval obtained by inverting the
Wilcoxon signed-rank test with its *exact* null distribution, for every K. Nothing is random, so
every verifier derives the same interval from the same pairs.

Direction: the ratio always reads "candidate relative to parent, below 1 is better". For a
metric where lower is better (nanoseconds) it is ``candidate / parent``; where higher is better
(throughput) it is ``parent / candidate``.

Decision: ``improved`` exactly when ``hi_ppm < PPM - min_improvement_ppm`` (strict: with
``min_improvement_ppm = 0`` an interval touching 1 is no evidence of a gain, and identical
measurements can never pass). ``hi_ppm`` is rounded *up* and ``lo_ppm`` *down* from the real
interval, so the integer interval always contains it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from protocol.constants import MAX_RATIO_PPM, PPM
from protocol.objects import Stats

DIRECTIONS = ("lower", "higher")
IMPROVED = "improved"
NOT_IMPROVED = "not_improved"
METHOD = "hodges-lehmann + exact wilcoxon signed-rank interval on log ratios"


class StatsError(ValueError):
    """Measurements or parameters the statistics cannot use; the message says which."""


@dataclass(frozen=True)
class PairedEstimate:
    """The outcome of one paired comparison, in the integers the protocol carries."""

    ratio_ppm: int
    """Point estimate of candidate/parent (direction-adjusted), ppm; below PPM is better."""
    lo_ppm: int
    hi_ppm: int
    """The confidence interval, ppm, 1 <= lo <= ratio <= hi <= MAX_RATIO_PPM."""
    pairs: int
    confidence_ppm: int
    min_improvement_ppm: int
    improved: bool
    bounded: bool
    """False when K is too small for any finite interval at this confidence (min_pairs): the
    interval is then the whole range [1, MAX_RATIO_PPM] and never shows an improvement."""

    @property
    def verdict(self) -> str:
        return IMPROVED if self.improved else NOT_IMPROVED


# --- the pieces ----------------------------------------------------------------------------


def log_ratios(pairs: Iterable[tuple[int, int]], direction: str = "lower") -> np.ndarray:
    """Per-pair ``ln(candidate/parent)`` (``ln(parent/candidate)`` when higher is better).

    The quotient is taken on the exact integers (Python's int / int is correctly rounded), so
    scaling a pair's two measurements by the same factor changes nothing, bit for bit.
    """
    if direction not in DIRECTIONS:
        raise StatsError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    ratios = []
    for index, pair in enumerate(pairs):
        if len(pair) != 2:
            raise StatsError(f"pair {index}: expected (parent_ns, candidate_ns), got {pair!r}")
        parent, candidate = pair
        for name, value in (("parent", parent), ("candidate", candidate)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise StatsError(f"pair {index}: {name} measurement must be a positive int, "
                                 f"got {value!r}")
        ratios.append(candidate / parent if direction == "lower" else parent / candidate)
    if not ratios:
        raise StatsError("no pairs: a comparison needs at least one measured pair")
    return np.log(np.array(ratios, dtype=np.float64))


@lru_cache(maxsize=32)
def signed_rank_cdf(k: int) -> np.ndarray:
    """``cdf[t] = P(T+ <= t)`` for the Wilcoxon signed-rank statistic of k untied pairs under
    the null hypothesis (each sign a fair coin), t = 0 .. k(k+1)/2.

    scipy computes this distribution inside ``scipy.stats.wilcoxon`` (the private
    ``scipy.stats._wilcoxon``) but has no public API returning it, and the interval needs its
    quantiles, not a p-value; so it is built here as the generating function prod(1 + x^i)/2.
    The arithmetic is float64 with a fixed operation order, so it is the same on every IEEE-754
    machine.
    """
    if k < 1:
        raise StatsError(f"the signed-rank distribution needs k >= 1, got {k}")
    top = k * (k + 1) // 2
    pmf = np.zeros(top + 1, dtype=np.float64)
    pmf[0] = 1.0
    reach = 0
    for rank in range(1, k + 1):
        reach += rank
        shifted = pmf[: reach - rank + 1].copy()
        pmf[rank: reach + 1] += shifted
        pmf[: reach + 1] *= 0.5
    cdf = np.cumsum(pmf)
    cdf.setflags(write=False)
    return cdf


def interval_rank(k: int, confidence_ppm: int) -> int:
    """The order statistic c such that ``[W_(c), W_(M+1-c)]`` of the M = k(k+1)/2 sorted Walsh
    averages is a confidence interval of at least the requested level (0: none is finite).

    c is the number of t with ``P(T+ <= t) <= alpha/2``: the interval's coverage is then exactly
    ``1 - 2 P(T+ <= c-1) >= 1 - alpha`` for continuous, symmetric noise.
    """
    _check_confidence(confidence_ppm)
    half_alpha = (PPM - confidence_ppm) / (2 * PPM)
    return int(np.searchsorted(signed_rank_cdf(k), half_alpha, side="right"))


def min_pairs(confidence_ppm: int) -> int:
    """Fewest pairs for which a finite interval exists at this confidence (6 at 95%).

    A finite interval needs ``P(T+ = 0) = 2^-K <= alpha/2``.
    """
    _check_confidence(confidence_ppm)
    k = 1
    while (PPM - confidence_ppm) * 2 ** k < 2 * PPM:
        k += 1
    return k


def hodges_lehmann(d: np.ndarray, confidence_ppm: int) -> tuple[float, float, float]:
    """(estimate, lo, hi) of the shift of ``d``; lo/hi are ±inf when K < min_pairs."""
    d = np.asarray(d, dtype=np.float64)
    k = len(d)
    if k == 0:
        raise StatsError("no observations")
    i, j = np.triu_indices(k)
    walsh = np.sort((d[i] + d[j]) / 2.0)
    estimate = float(np.median(walsh))
    c = interval_rank(k, confidence_ppm)
    if c == 0:
        return estimate, -math.inf, math.inf
    return estimate, float(walsh[c - 1]), float(walsh[len(walsh) - c])


# --- the comparison ------------------------------------------------------------------------


def estimate(pairs: Iterable[tuple[int, int]], *, confidence_ppm: int = 950_000,
             min_improvement_ppm: int = 5_000, direction: str = "lower") -> PairedEstimate:
    """Compare candidate with parent from measured pairs ``(parent_ns, candidate_ns)``."""
    _check_min_improvement(min_improvement_ppm)
    d = log_ratios(pairs, direction)
    centre, lo, hi = hodges_lehmann(d, confidence_ppm)
    bounded = math.isfinite(lo) and math.isfinite(hi)
    ratio_ppm = _clamp(round(math.exp(centre) * PPM))
    lo_ppm = min(_clamp(math.floor(math.exp(lo) * PPM)) if bounded else 1, ratio_ppm)
    hi_ppm = max(_clamp(math.ceil(math.exp(hi) * PPM)) if bounded else MAX_RATIO_PPM, ratio_ppm)
    return PairedEstimate(
        ratio_ppm=ratio_ppm, lo_ppm=lo_ppm, hi_ppm=hi_ppm, pairs=len(d),
        confidence_ppm=confidence_ppm, min_improvement_ppm=min_improvement_ppm,
        improved=bounded and is_improved(hi_ppm, min_improvement_ppm), bounded=bounded)


def estimate_for_target(pairs: Iterable[tuple[int, int]], stats: Stats,
                        direction: str) -> PairedEstimate:
    """``estimate`` with a target's statistical parameters and metric direction."""
    return estimate(pairs, confidence_ppm=stats.confidence_ppm,
                    min_improvement_ppm=stats.min_improvement_ppm, direction=direction)


def is_improved(hi_ppm: int, min_improvement_ppm: int) -> bool:
    """The whole interval lies strictly below ``1 - min_improvement``."""
    _check_min_improvement(min_improvement_ppm)
    return hi_ppm < PPM - min_improvement_ppm


def decide(lo_ppm: int, hi_ppm: int, min_improvement_ppm: int) -> str:
    """The verdict an interval supports: ``improved`` or ``not_improved``.

    Pure, so anyone can re-check an attestation's verdict from its interval.
    """
    if not 1 <= lo_ppm <= hi_ppm <= MAX_RATIO_PPM:
        raise StatsError(f"not an interval: lo_ppm={lo_ppm}, hi_ppm={hi_ppm} "
                         f"(need 1 <= lo <= hi <= {MAX_RATIO_PPM})")
    return IMPROVED if is_improved(hi_ppm, min_improvement_ppm) else NOT_IMPROVED


def _clamp(value: int) -> int:
    return min(max(value, 1), MAX_RATIO_PPM)


def _check_confidence(confidence_ppm: int) -> None:
    lo, hi = Stats.RANGES["confidence_ppm"]
    if not isinstance(confidence_ppm, int) or not lo <= confidence_ppm <= hi:
        raise StatsError(f"confidence_ppm must be an int in [{lo}, {hi}], got {confidence_ppm!r}")


def _check_min_improvement(min_improvement_ppm: int) -> None:
    lo, hi = Stats.RANGES["min_improvement_ppm"]
    if not isinstance(min_improvement_ppm, int) or not lo <= min_improvement_ppm <= hi:
        raise StatsError(f"min_improvement_ppm must be an int in [{lo}, {hi}], "
                         f"got {min_improvement_ppm!r}")
