"""Paired benchmark statistics (verifier/stats.py, docs/PROTOCOL.md §Statistics)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
from hypothesis import assume, given
from hypothesis import strategies as st

from protocol.constants import MAX_RATIO_PPM, PPM
from protocol.objects import Stats
from verifier.stats import (
    IMPROVED,
    NOT_IMPROVED,
    StatsError,
    decide,
    estimate,
    estimate_for_target,
    interval_rank,
    is_improved,
    log_ratios,
    min_pairs,
    signed_rank_cdf,
)

ns = st.integers(min_value=1_000, max_value=10**12)
pair = st.builds(lambda parent, permille: (parent, max(1, parent * permille // 1000)),
                 ns, st.integers(min_value=20, max_value=50_000))
"""(parent_ns, candidate_ns) from 50x faster to 50x slower."""
pair_lists = st.lists(pair, min_size=1, max_size=40)
confidences = st.integers(min_value=500_000, max_value=999_999)
min_improvements = st.integers(min_value=0, max_value=500_000)


def swap(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [(candidate, parent) for parent, candidate in pairs]


# --- the exact null distribution and the interval's order statistic ------------------------


@pytest.mark.parametrize("k", [1, 2, 5, 7, 12, 15, 23, 30])
def test_null_distribution_matches_scipys_exact_wilcoxon(k: int) -> None:
    rng = np.random.default_rng(k)
    cdf = signed_rank_cdf(k)
    assert cdf[-1] == pytest.approx(1.0) and np.all(np.diff(cdf) >= 0)
    for _ in range(20):
        signs = rng.choice([-1.0, 1.0], size=k)
        d = signs * np.arange(1, k + 1)
        t_plus = int(np.arange(1, k + 1)[signs > 0].sum())
        exact = scipy.stats.wilcoxon(d, method="exact", alternative="less").pvalue
        assert cdf[t_plus] == pytest.approx(exact, rel=1e-12)


# Two-sided 5% critical values of the signed-rank statistic (reject when T <= t), from the
# standard tables; the interval uses the order statistic c = t + 1.
CRITICAL_5PCT = {6: 0, 7: 2, 8: 3, 9: 5, 10: 8, 11: 10, 12: 13, 13: 17, 14: 21, 15: 25,
                 16: 29, 17: 34, 18: 40, 19: 46, 20: 52, 25: 89, 30: 137}


@pytest.mark.parametrize(("k", "t"), sorted(CRITICAL_5PCT.items()))
def test_interval_rank_matches_the_published_tables(k: int, t: int) -> None:
    assert interval_rank(k, 950_000) == t + 1


def test_fewest_pairs_for_a_finite_interval() -> None:
    assert min_pairs(950_000) == 6
    assert min_pairs(990_000) == 8
    assert min_pairs(999_999) == 21
    assert interval_rank(5, 950_000) == 0


@given(confidences)
def test_min_pairs_is_where_a_finite_interval_starts(confidence: int) -> None:
    k = min_pairs(confidence)
    assert interval_rank(k, confidence) >= 1
    if k > 1:
        assert interval_rank(k - 1, confidence) == 0


# --- properties of the comparison ----------------------------------------------------------


@given(pair_lists, st.lists(st.integers(min_value=1, max_value=10**6), min_size=40,
                            max_size=40))
def test_scaling_any_pair_changes_nothing(pairs: list[tuple[int, int]],
                                          factors: list[int]) -> None:
    """A pair measured on a machine twice as slow (both runs) carries the same evidence."""
    scaled = [(p * f, c * f) for (p, c), f in zip(pairs, factors, strict=False)]
    assert estimate(scaled) == estimate(pairs)


@given(pair_lists, st.randoms(use_true_random=False))
def test_order_of_the_pairs_does_not_matter(pairs: list[tuple[int, int]], rnd) -> None:
    shuffled = list(pairs)
    rnd.shuffle(shuffled)
    assert estimate(shuffled) == estimate(pairs)


@given(pair_lists, confidences)
def test_swapping_parent_and_candidate_inverts_the_interval(pairs: list[tuple[int, int]],
                                                            confidence: int) -> None:
    forward = estimate(pairs, confidence_ppm=confidence)
    backward = estimate(swap(pairs), confidence_ppm=confidence)
    assert backward.bounded == forward.bounded
    assume(forward.bounded)  # else both are the whole range
    # ratio' = 1/ratio, lo' = 1/hi, hi' = 1/lo, up to rounding each bound to whole ppm.
    assert abs(backward.lo_ppm * forward.hi_ppm - PPM**2) <= backward.lo_ppm + forward.hi_ppm
    assert abs(backward.hi_ppm * forward.lo_ppm - PPM**2) <= backward.hi_ppm + forward.lo_ppm
    assert abs(backward.ratio_ppm * forward.ratio_ppm - PPM**2) <= (
        backward.ratio_ppm + forward.ratio_ppm)


@given(pair_lists)
def test_higher_is_better_reads_as_the_swapped_ratio(pairs: list[tuple[int, int]]) -> None:
    """Throughput going up is the same evidence as time going down: below 1 is better."""
    assert estimate(pairs, direction="higher") == estimate(swap(pairs), direction="lower")


@given(st.lists(ns, min_size=1, max_size=60), confidences, min_improvements)
def test_identical_measurements_are_never_an_improvement(values: list[int], confidence: int,
                                                         min_improvement: int) -> None:
    result = estimate([(v, v) for v in values], confidence_ppm=confidence,
                      min_improvement_ppm=min_improvement)
    assert result.ratio_ppm == PPM and not result.improved
    assert result.verdict == NOT_IMPROVED


@given(st.lists(st.tuples(ns, st.floats(min_value=-0.01, max_value=0.01)), min_size=6,
                max_size=60))
def test_a_large_clear_gain_is_an_improvement(runs: list[tuple[int, float]]) -> None:
    """20% faster, whatever the ±1% noise, from 6 pairs on (the minimum at 95%)."""
    pairs = [(parent, max(1, round(parent * 0.8 * (1 + noise)))) for parent, noise in runs]
    result = estimate(pairs)
    assert result.improved and result.verdict == IMPROVED
    assert 780_000 <= result.lo_ppm <= result.ratio_ppm <= result.hi_ppm <= 820_000


@given(pair_lists, confidences, min_improvements)
def test_the_interval_is_well_formed_and_decides_consistently(
        pairs: list[tuple[int, int]], confidence: int, min_improvement: int) -> None:
    result = estimate(pairs, confidence_ppm=confidence, min_improvement_ppm=min_improvement)
    assert 1 <= result.lo_ppm <= result.ratio_ppm <= result.hi_ppm <= MAX_RATIO_PPM
    assert result.pairs == len(pairs)
    assert decide(result.lo_ppm, result.hi_ppm, min_improvement) == result.verdict


@given(pair_lists, st.integers(min_value=1, max_value=1000))
def test_a_faster_candidate_never_widens_the_upper_bound(pairs: list[tuple[int, int]],
                                                         speedup_ppm: int) -> None:
    faster = [(p, max(1, c * (PPM - speedup_ppm) // PPM)) for p, c in pairs]
    assert estimate(faster).hi_ppm <= estimate(pairs).hi_ppm


def test_too_few_pairs_give_the_whole_range_and_no_verdict_of_improvement() -> None:
    result = estimate([(1000, 500)] * 5)  # halved, but 5 pairs cannot show it at 95%
    assert not result.bounded and not result.improved
    assert (result.lo_ppm, result.ratio_ppm, result.hi_ppm) == (1, 500_000, MAX_RATIO_PPM)
    assert estimate([(1000, 500)] * 6).improved


def test_improvement_threshold_is_strict() -> None:
    assert decide(900_000, 994_999, 5_000) == IMPROVED
    assert decide(900_000, 995_000, 5_000) == NOT_IMPROVED
    assert not is_improved(PPM, 0), "touching 1 is no evidence of a gain"
    assert is_improved(PPM - 1, 0)


def test_target_parameters_are_used() -> None:
    pairs = [(1000, 990 + i % 3) for i in range(15)]  # about 1% faster
    strict = Stats(min_improvement_ppm=20_000)
    assert estimate_for_target(pairs, Stats(), "lower").improved
    assert not estimate_for_target(pairs, strict, "lower").improved


@pytest.mark.parametrize(("pairs", "match"), [
    ([], "no pairs"),
    ([(0, 5)], "positive int"),
    ([(5, -1)], "positive int"),
    ([(5.0, 5)], "positive int"),
    ([(True, 5)], "positive int"),
    ([(1, 2, 3)], "expected"),
])
def test_unusable_measurements_are_refused(pairs: list, match: str) -> None:
    with pytest.raises(StatsError, match=match):
        estimate(pairs)


def test_unusable_parameters_are_refused() -> None:
    with pytest.raises(StatsError, match="direction"):
        log_ratios([(1, 1)], "sideways")
    with pytest.raises(StatsError, match="confidence_ppm"):
        estimate([(1, 1)], confidence_ppm=1_000_000)
    with pytest.raises(StatsError, match="min_improvement_ppm"):
        estimate([(1, 1)], min_improvement_ppm=-1)
    with pytest.raises(StatsError, match="not an interval"):
        decide(10, 5, 0)


# --- Monte Carlo: the interval holds its level under realistic noise -----------------------


def noisy_pairs(rng: np.random.Generator, k: int, effect: float) -> list[tuple[int, int]]:
    """One verifier's K pairs on a noisy shared machine: lognormal run-to-run noise of 1-3%
    and, in 5% of the pairs, a neighbour slowing one of the two runs by 10-100% (either one,
    since the order within each pair is random)."""
    sigma = rng.uniform(0.01, 0.03)
    parent = 2e6 * np.exp(rng.normal(0.0, sigma, k))
    candidate = 2e6 * effect * np.exp(rng.normal(0.0, sigma, k))
    hit = rng.random(k) < 0.05
    on_parent = rng.random(k) < 0.5
    slowdown = rng.uniform(1.1, 2.0, k)
    parent = np.where(hit & on_parent, parent * slowdown, parent)
    candidate = np.where(hit & ~on_parent, candidate * slowdown, candidate)
    return list(zip(np.rint(parent).astype(int).tolist(), np.rint(candidate).astype(int).tolist(),
                    strict=True))


def test_null_effect_is_falsely_accepted_no_more_often_than_the_nominal_level() -> None:
    rng = np.random.default_rng(20240521)
    trials, k = 4000, 15
    false_accepts = covered = 0
    for _ in range(trials):
        result = estimate(noisy_pairs(rng, k, effect=1.0))
        false_accepts += result.improved
        covered += result.lo_ppm <= PPM <= result.hi_ppm
    alpha = 0.05
    # A false accept needs the interval entirely below 0.995: at most alpha/2 by construction.
    assert false_accepts / trials <= alpha / 2
    # Two-sided coverage of the true ratio 1 is at least 95% (exact test: 95.2% at K = 15);
    # allow three standard errors of Monte-Carlo noise.
    assert covered / trials >= (1 - alpha) - 3 * np.sqrt(alpha * (1 - alpha) / trials)


def test_a_real_five_percent_gain_is_found_from_fifteen_noisy_pairs() -> None:
    rng = np.random.default_rng(7)
    found = sum(estimate(noisy_pairs(rng, 15, effect=0.95)).improved for _ in range(1000))
    assert found / 1000 >= 0.9
