"""The discrete-time Hawkes fit (clients/sim/cascade/hawkes.py) on data simulated from its own
model, with known parameters.

The simulator below draws N_t ~ Poisson(mu + gamma * x_t + n * sum_k w_k N_(t-k)) second by
second with random.Random(seed) (Poisson draws by inversion of the CDF), the kernel geometric
with decay q truncated at K = 300 lags, exactly as the module docstring writes the model. The
driver x_t is a sparse series of spikes: in 1% of the seconds an index move uniform in
[5, 50] bp, 0 elsewhere. With q = 0.8 the kernel's mean lag is 1 / (1 - 0.8) = 5 s (the
truncation at 300 lags changes it by less than 1e-25).
"""

from __future__ import annotations

import json
import math
import random
from collections import deque
from dataclasses import dataclass
from functools import cache

import pytest

from gaemi.clients.sim.cascade.hawkes import HawkesFit, as_dict, fit

NOT_ENOUGH = "fewer than two seconds with liquidations: nothing to separate"
MAX_LAG = 300
SPIKE_SHARE = 0.01  # of the seconds with an index move
SPIKE_BP = (5.0, 50.0)


@dataclass(frozen=True)
class Sample:
    counts: dict[int, int]
    driver: list[float]
    bins: int


def _poisson(rng: random.Random, rate: float) -> int:
    """A Poisson(rate) draw by inversion: the smallest k with P(N <= k) >= u."""
    u = rng.random()
    k = 0
    p = math.exp(-rate)
    cdf = p
    while u > cdf and p > 0.0:
        k += 1
        p *= rate / k
        cdf += p
    return k


@cache
def simulate(seed: int, bins: int, mu: float, gamma: float, n: float, q: float,
             max_lag: int = MAX_LAG) -> Sample:
    """One path of the model (module docstring of hawkes.py), deterministic for its seed."""
    rng = random.Random(seed)
    w = [0.0] + [(1 - q) * q ** (k - 1) / (1 - q**max_lag) for k in range(1, max_lag + 1)]
    counts: dict[int, int] = {}
    driver = [0.0] * bins
    recent: deque[tuple[int, int]] = deque()  # (bin, count) of the last max_lag seconds
    for t in range(bins):
        if rng.random() < SPIKE_SHARE:
            driver[t] = rng.uniform(*SPIKE_BP)
        while recent and t - recent[0][0] > max_lag:
            recent.popleft()
        excitation = n * sum(c * w[t - s] for s, c in recent) if n else 0.0
        count = _poisson(rng, mu + gamma * driver[t] + excitation)
        if count:
            counts[t] = count
            recent.append((t, count))
    return Sample(counts, driver, bins)


def _decay_of(mean_lag: float, max_lag: int) -> float:
    """The q of a truncated geometric kernel with this mean lag (bisection: it grows with q)."""
    lo, hi = 1e-12, 1.0 - 1e-12
    for _ in range(200):
        mid = (lo + hi) / 2
        mean = sum(k * (1 - mid) * mid ** (k - 1) for k in range(1, max_lag + 1)) / (
            1 - mid**max_lag)
        lo, hi = (mid, hi) if mean < mean_lag else (lo, mid)
    return (lo + hi) / 2


def _log_likelihood(sample: Sample, mu: float, gamma: float, n: float, q: float,
                    max_lag: int) -> float:
    """The model's Poisson log-likelihood straight from its definition, every bin, every lag."""
    w = [0.0] + [(1 - q) * q ** (k - 1) / (1 - q**max_lag) for k in range(1, max_lag + 1)]
    total = 0.0
    for t in range(sample.bins):
        past = sum(w[k] * sample.counts.get(t - k, 0) for k in range(1, min(t, max_lag) + 1))
        rate = mu + gamma * sample.driver[t] + n * past
        count = sample.counts.get(t, 0)
        total += count * math.log(rate) - rate - math.lgamma(count + 1)
    return total


def _fit(sample: Sample, with_driver: bool = True, **options: int) -> HawkesFit:
    return fit(sample.counts, sample.bins, sample.driver if with_driver else None, **options)


# --- recovery of known parameters --------------------------------------------------------------

TRUE_MU, TRUE_GAMMA, TRUE_N, TRUE_Q, TRUE_MEAN_LAG = 0.01, 0.02, 0.6, 0.8, 5.0


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_recovers_the_parameters_of_simulated_cascades(seed: int) -> None:
    # Arrange: 60,000 s of background 0.01/s, 0.02 liquidations/s per bp of index move, and
    # n = 0.6 with a 5 s mean lag: ~600 background, ~330 driven and ~1,400 offspring events
    sample = simulate(seed, 60_000, TRUE_MU, TRUE_GAMMA, TRUE_N, TRUE_Q)

    # Act
    result = _fit(sample)

    # Assert: n within 0.1, the rates within 20% / 25%, the lag within 1.5 s
    assert result.converged and result.note == ""
    assert result.with_driver and result.bins == 60_000
    assert result.events == sum(sample.counts.values()) > 1_500
    assert result.branching_ratio == pytest.approx(TRUE_N, abs=0.1)
    assert result.background_per_s == pytest.approx(TRUE_MU, rel=0.2)
    assert result.driver_coefficient == pytest.approx(TRUE_GAMMA, rel=0.25)
    assert result.mean_lag_s == pytest.approx(TRUE_MEAN_LAG, abs=1.5)


def test_pure_poisson_data_has_a_small_branching_ratio() -> None:
    # Arrange: n = 0, no driver, ~3,000 liquidations at 0.05/s over 60,000 s
    sample = simulate(21, 60_000, 0.05, 0.0, 0.0, TRUE_Q)

    # Act
    result = _fit(sample, with_driver=False)

    # Assert
    assert result.converged and not result.with_driver
    assert result.branching_ratio is not None and result.branching_ratio < 0.1
    assert result.background_per_s == pytest.approx(0.05, rel=0.1)
    assert result.driver_coefficient == 0.0


def test_driven_data_is_attributed_to_the_driver_only_when_the_driver_is_given() -> None:
    # Arrange: n = 0; background 0.002/s and 0.04/s per bp: most liquidations come with spikes
    sample = simulate(31, 40_000, 0.002, 0.04, 0.0, TRUE_Q)

    # Act
    with_driver = _fit(sample)
    without_driver = _fit(sample, with_driver=False)

    # Assert: with the driver n stays small and gamma is found; without it the liquidations of
    # the spikes go to the background (or to n), and the likelihood is lower
    assert with_driver.branching_ratio is not None and with_driver.branching_ratio < 0.1
    assert with_driver.driver_coefficient == pytest.approx(0.04, rel=0.25)
    assert without_driver.background_per_s is not None and with_driver.background_per_s
    assert without_driver.background_per_s > 2 * with_driver.background_per_s
    assert with_driver.log_likelihood is not None and without_driver.log_likelihood is not None
    assert with_driver.log_likelihood >= without_driver.log_likelihood


# --- the likelihood, the edges -----------------------------------------------------------------


@pytest.mark.parametrize("max_lag", [1, 2, 60])
def test_the_reported_log_likelihood_is_the_models_at_the_fitted_parameters(max_lag: int) -> None:
    # Arrange: 4,000 s with a slow kernel (q = 0.95), events in the last max_lag seconds too
    sample = simulate(41, 4_000, 0.02, 0.05, 0.7, 0.95, max_lag=60)
    assert any(t >= sample.bins - max_lag for t in sample.counts)

    # Act
    result = _fit(sample, max_lag=max_lag)

    # Assert: the likelihood summed over every bin and lag at the fitted parameters (q from the
    # mean lag) is the one reported, and no lower than at the parameters the data came from
    assert result.converged
    assert result.mean_lag_s is not None and result.log_likelihood is not None
    assert result.background_per_s is not None and result.driver_coefficient is not None
    assert result.branching_ratio is not None
    q = 0.5 if max_lag == 1 else _decay_of(result.mean_lag_s, max_lag)
    direct = _log_likelihood(sample, result.background_per_s, result.driver_coefficient,
                             result.branching_ratio, q, max_lag)
    assert result.log_likelihood == pytest.approx(direct, rel=1e-9)
    if max_lag == 60:
        assert result.log_likelihood >= _log_likelihood(sample, 0.02, 0.05, 0.7, 0.95, 60)


def test_the_same_input_gives_exactly_the_same_fit() -> None:
    # Arrange
    sample = simulate(51, 20_000, 0.01, 0.02, 0.5, TRUE_Q)
    reversed_counts = dict(reversed(list(sample.counts.items())))

    # Act
    first = _fit(sample)
    second = _fit(sample)
    reordered = fit(reversed_counts, sample.bins, sample.driver)

    # Assert: equal to the last bit
    assert first == second == reordered


@pytest.mark.parametrize(
    ("counts", "events", "event_bins"),
    [
        ({}, 0, 0),  # no liquidations
        ({5: 0, 9: 0}, 0, 0),  # zero counts only
        ({10: 1}, 1, 1),  # a single liquidation
        ({500: 200}, 200, 1),  # a burst of 200 in one second: nothing excites anything
    ],
)
def test_fewer_than_two_seconds_with_liquidations_are_not_identifiable(
        counts: dict[int, int], events: int, event_bins: int) -> None:
    # Act
    result = fit(counts, 1_000, [1.0] * 1_000)

    # Assert
    assert result == HawkesFit(
        branching_ratio=None, background_per_s=None, driver_coefficient=None, mean_lag_s=None,
        log_likelihood=None, events=events, bins=1_000, event_bins=event_bins, iterations=0,
        converged=False, with_driver=True, note=NOT_ENOUGH,
    )


def test_liquidations_further_apart_than_the_kernel_have_no_offspring() -> None:
    # Act: 1 at 100 s and 2 at 1000 s, K = 300: no pair within reach
    result = fit({100: 1, 1_000: 2}, 2_000, max_lag=300)

    # Assert: n is exactly 0 and the background explains everything
    assert result.converged
    assert result.branching_ratio == 0.0
    assert result.background_per_s == pytest.approx(3 / 2_000)


def test_a_driver_that_is_zero_everywhere_has_no_coefficient() -> None:
    # Arrange
    sample = simulate(61, 10_000, 0.02, 0.0, 0.5, TRUE_Q)

    # Act
    result = fit(sample.counts, sample.bins, [0.0] * sample.bins)

    # Assert: the rest is fitted, without the driver
    assert result.driver_coefficient is None and "driver is zero" in result.note
    assert result.branching_ratio is not None and result.with_driver
    assert result.branching_ratio == _fit(sample, with_driver=False).branching_ratio


def test_a_constant_driver_cannot_be_told_from_the_background() -> None:
    # Arrange
    sample = simulate(61, 10_000, 0.02, 0.0, 0.5, TRUE_Q)

    # Act
    result = fit(sample.counts, sample.bins, [2.0] * sample.bins)

    # Assert: neither rate is reported; the fit is the one without a driver (the same model:
    # mu + gamma * 2 is one constant), up to the convergence tolerance
    without_driver = _fit(sample, with_driver=False)
    assert result.background_per_s is None and result.driver_coefficient is None
    assert "not separately identifiable" in result.note
    assert result.log_likelihood == pytest.approx(without_driver.log_likelihood, rel=1e-8)
    assert result.branching_ratio == pytest.approx(without_driver.branching_ratio, abs=1e-3)


def test_stopping_at_max_iter_is_reported() -> None:
    # Arrange
    sample = simulate(51, 20_000, 0.01, 0.02, 0.5, TRUE_Q)

    # Act
    result = _fit(sample, max_iter=1)

    # Assert: estimates, but flagged
    assert result.iterations == 1 and not result.converged
    assert "without converging" in result.note
    assert result.branching_ratio is not None


@pytest.mark.parametrize(
    ("counts", "bins", "driver", "options", "message"),
    [
        ({1: -1}, 10, None, {}, "count -1 at bin 1"),
        ({1: 1.5}, 10, None, {}, "count 1.5"),
        ({-1: 1}, 10, None, {}, "bin -1"),
        ({10: 1}, 10, None, {}, "bin 10"),
        ({1: 1}, 0, None, {}, "bins must be a positive integer"),
        ({1: 1}, 10, [0.0] * 9, {}, "driver has 9 values for 10 bins"),
        ({1: 1}, 3, [0.0, -1.0, 0.0], {}, "driver value -1.0 at bin 1"),
        ({1: 1}, 3, [0.0, math.nan, 0.0], {}, "driver value nan at bin 1"),
        ({1: 1}, 3, [0.0, math.inf, 0.0], {}, "driver value inf at bin 1"),
        ({1: 1}, 10, None, {"max_lag": 0}, "max_lag"),
        ({1: 1}, 10, None, {"tol": 0.0}, "tol"),
        ({1: 1}, 10, None, {"max_iter": 0}, "max_iter"),
    ],
)
def test_bad_input_raises_value_error(counts: dict[int, int], bins: int,
                                      driver: list[float] | None, options: dict[str, float],
                                      message: str) -> None:
    # Act / Assert
    with pytest.raises(ValueError, match=message):
        fit(counts, bins, driver, **options)  # type: ignore[arg-type]


def test_as_dict_is_json_ready_and_rounded() -> None:
    # Arrange
    result = HawkesFit(
        branching_ratio=0.612345678, background_per_s=0.000123456789,
        driver_coefficient=None, mean_lag_s=5.05555, log_likelihood=-10185.06523029,
        events=3052, bins=60_000, event_bins=2800, iterations=7, converged=True,
        with_driver=True, note="",
    )

    # Act
    out = as_dict(result)

    # Assert: 4 decimals for n, the lag and the likelihood; 4 significant digits for the rates
    assert out == {
        "branching_ratio": 0.6123, "background_per_s": 0.0001235, "driver_coefficient": None,
        "mean_lag_s": 5.0556, "log_likelihood": -10185.0652, "events": 3052, "bins": 60_000,
        "event_bins": 2800, "iterations": 7, "converged": True, "with_driver": True, "note": "",
    }
    assert json.loads(json.dumps(out)) == out
