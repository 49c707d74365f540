"""How much of a liquidation cascade excites itself: a discrete-time Hawkes fit.

A second, model-free-ish measure next to the endogenous multiplier of metrics.py (which reads
the venue's own causal links): fit a self-exciting point process to the per-second counts of
liquidations, with the index move of each second as an exogenous driver, and read off the
**branching ratio** n, the expected number of liquidations one liquidation sets off directly.

The model
---------
Time is cut into one-second bins t = 0 .. T-1. N_t is the number of liquidations in bin t and
x_t >= 0 the exogenous driver in bin t (the caller passes the absolute index return of the
second, in basis points). Conditional on the past, N_t is Poisson (a Poisson autoregression,
the discrete-time Hawkes process):

    N_t ~ Poisson(lambda_t),   lambda_t = mu + gamma * x_t + n * sum_{k=1..K} w_k * N_{t-k}

    mu    >= 0   background liquidations per second
    gamma >= 0   liquidations per second per unit of driver (per bp of index move)
    n     >= 0   the branching ratio: expected direct offspring of one liquidation
    w_k          a geometric kernel truncated at K lags and normalised to sum to 1:
                     w_k = (1 - q) * q^(k-1) / (1 - q^K),   0 < q < 1,  k = 1 .. K
                 its mean lag, reported as ``mean_lag_s``, is
                     sum_k k * w_k = 1 / (1 - q) - K * q^K / (1 - q^K)   seconds.

n < 1 is a cascade that dies out by itself; 1 / (1 - n) is the total number of liquidations
one exogenous liquidation leads to (itself included). Terms with t - k < 0 are absent: the
process starts empty at t = 0, with no excitation from before the sample.

Limitation: liquidations in the same second do not excite each other; excitation starts at the
next second. Simultaneous forced sales set off by one mark update land in one bin, and that
part of a cascade is counted as background or driver, not as self-excitation: n is a lower
bound on the self-excitation at time scales below one second.

The fit
-------
Maximum likelihood by expectation-maximisation over the branching structure. The E-step splits
each bin's count among the background, the driver and every earlier bin's excitation in
proportion to their rates (mu, gamma * x_t, n * w_(t-j) * N_j). The M-step is closed form:

    mu    = (expected background count) / T
    gamma = (expected driven count) / sum_t x_t
    n     = (expected offspring count) / sum_j N_j * W(T - 1 - j),   W(m) = sum_{k<=min(m,K)} w_k

the denominator being the compensator of the excitation: a liquidation j seconds before the
end of the sample has had only T - 1 - j seconds to have offspring, so the edge effect at the
end is handled exactly. The decay q maximises the expected complete log-likelihood with n
profiled out, by golden-section search on log q over q in [0.001, 1 - 1/K]: the untruncated
geometric's mean lag 1 / (1 - q) lies between 1 s and K s, so the kernel keeps decaying
instead of flattening into a slowly varying background (the truncated kernel's mean lag,
``mean_lag_s``, is then between 1.001 s and about 0.42 K s: 125.9 s for K = 300). The search
keeps the current q unless it finds a better one, so every EM step climbs.

Plain EM creeps along the flat ridges of this likelihood (a small n traded against a slow
kernel, as on data with no self-excitation) and can take thousands of steps there; it is
accelerated by SQUAREM (Varadhan and Roland, 2008, scheme S3): an iteration is two EM steps
and a step extrapolated from them, kept only when its log-likelihood is higher than the
second EM step's. The log-likelihood never decreases from one iteration to the next. It stops
when the log-likelihood changes by less than ``tol`` times max(1, |log-likelihood|) in an
iteration (so two plain EM steps changed it by no more), or after ``max_iter`` iterations, and
says which. The starting values are fixed (the background, the driver if there is one and the
excitation each explain an equal share of the events; q = 1/2) and nothing is random, so the
same input always gives the same fit.

Identifiability: with no events, or all of them in one second, there is nothing to separate
and the fit returns None estimates with a note; a driver that is zero everywhere has no
coefficient, and one that is the same everywhere cannot be told from the background (None for
what cannot be estimated, and a note). With K = 1 the kernel is w_1 = 1 and q plays no part.

With few events and a long K the estimate of n on data with no self-excitation is biased up (a
slow kernel fits noise): in simulations with K = 300, ~1,200 Poisson events over 40,000 s gave
n up to 0.11 (8 seeds); ~3,000 events over 60,000 s, a median of 0.01 and at most 0.096 (30
seeds).

The log-likelihood reported is the full Poisson one, the constant -sum_t log(N_t!) included.

Cost: T can be ~10^5 bins with a few hundred of them holding events. The log terms need
lambda_t only at bins with N_t > 0; the excitation there is a sum over the earlier event bins
within K seconds, kept by a recursion on the geometric kernel (O(event bins) per E-step, not
O(pairs)); the compensator needs only the event bins in the last K seconds; sum_t x_t over
every bin is taken once. 120,000 bins with 300 event bins fit in a few hundredths of a second.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from numbers import Integral
from typing import Any

__all__ = ["HawkesFit", "as_dict", "fit"]

Q_MIN = 1e-3  # the fastest kernel allowed: 99.9% of the offspring one second later
Q_START = 0.5
GOLDEN_TOL = 1e-10  # width of the final bracket on log q
INV_PHI = (math.sqrt(5.0) - 1.0) / 2.0
FIRST_STEP_MAX = 4.0  # longest first extrapolation, in EM steps (grows by 4 while it pays)
MAX_SHRINK = 1e-3  # an extrapolation may shrink a rate to no less than this share of it
NOT_ENOUGH = "fewer than two seconds with liquidations: nothing to separate"

# one step of the window recursion (_Data.steps): gap, joining count, (count, lag) leaving
_Step = tuple[int, int, tuple[tuple[int, int], ...]]


@dataclass(frozen=True, slots=True)
class HawkesFit:
    """The fitted model (module docstring), with what it was fitted on."""

    branching_ratio: float | None  # n; None when not identifiable (see note)
    background_per_s: float | None  # mu
    driver_coefficient: float | None  # gamma, liquidations per second per unit of driver
    mean_lag_s: float | None  # of the fitted kernel
    log_likelihood: float | None
    events: int  # sum of N_t
    bins: int  # T
    event_bins: int  # bins with N_t > 0
    iterations: int
    converged: bool
    with_driver: bool
    note: str  # "" or why the fit is not identifiable / did not converge


@dataclass(frozen=True, slots=True)
class _Data:
    """The input as EM reads it: only the bins that hold events, in time order."""

    count: tuple[int, ...]  # N at each event bin s_0 < s_1 < ...
    drive: tuple[float, ...]  # x at each event bin
    # from event bin i - 1 to i (i >= 1): the gap in seconds, N_(i-1) (0 when no earlier event
    # bin is within K seconds of bin i), and the (N_p, s_i - s_p - 1) of the event bins p that
    # were within K seconds of bin i - 1 and no longer are of bin i
    steps: tuple[_Step, ...]
    tail: tuple[tuple[int, int], ...]  # (N_j, T - 1 - j) for event bins less than K from the end
    settled: int  # events at least K seconds before the end: W(T - 1 - j) = 1
    log_factorials: float  # sum of log(N_t!)
    bins: int
    total_drive: float  # sum of x_t over every bin
    max_lag: int


@dataclass(frozen=True, slots=True)
class _Params:
    mu: float
    gamma: float
    n: float
    q: float


@dataclass(frozen=True, slots=True)
class _Split:
    """The E-step: the expected complete-data counts."""

    background: float  # liquidations attributed to mu
    driven: float  # ... to the driver
    offspring: float  # ... to earlier liquidations
    offspring_extra_lag: float  # sum over offspring of (lag - 1)


def fit(
    counts: Mapping[int, int],
    bins: int,
    driver: Sequence[float] | None = None,
    *,
    max_lag: int = 300,
    tol: float = 1e-9,
    max_iter: int = 2_000,
) -> HawkesFit:
    """Fit the model of the module docstring by EM.

    ``counts`` maps a bin (second) in [0, bins) to its number of liquidations; absent bins have
    none. ``driver`` holds x_t for every bin (length ``bins``), or is None to fit without it
    (gamma fixed at 0 and reported as 0.0). ``max_lag`` is K; ``tol`` and ``max_iter`` stop
    the iterations (``iterations`` counts accelerated iterations, two EM steps each).

    Raises ValueError on bad input. A valid input with too little in it never raises: fewer
    than two seconds with liquidations give None estimates and a note; a driver that is zero
    in every bin gives ``driver_coefficient`` None (and a note), the rest fitted without it;
    a driver that is the same positive number in every bin cannot be told from the background:
    both ``background_per_s`` and ``driver_coefficient`` are None (and a note).
    """
    _check_options(bins, max_lag, tol, max_iter)
    bins, max_lag = int(bins), int(max_lag)
    events = _event_counts(counts, bins)
    total_drive, constant_drive = _checked_driver(driver, bins)
    with_driver = driver is not None
    event_total = sum(events.values())
    if len(events) < 2:
        return _unidentified(event_total, bins, len(events), with_driver, NOT_ENOUGH)
    data = _prepare(events, bins, driver, total_drive, max_lag)
    params, ll, iterations, converged, change = _em(data, with_driver, tol, int(max_iter))
    driver_zero = with_driver and total_drive == 0.0
    driver_flat = with_driver and constant_drive and not driver_zero
    return HawkesFit(
        branching_ratio=params.n, background_per_s=None if driver_flat else params.mu,
        driver_coefficient=None if driver_zero or driver_flat else params.gamma,
        mean_lag_s=_mean_lag(params.q, max_lag), log_likelihood=ll, events=event_total,
        bins=bins, event_bins=len(events), iterations=iterations, converged=converged,
        with_driver=with_driver,
        note=_note(driver_zero, driver_flat, converged, iterations, change),
    )


def _note(driver_zero: bool, driver_flat: bool, converged: bool, iterations: int,
          change: float) -> str:
    notes = []
    if driver_zero:
        notes.append("the driver is zero in every bin: its coefficient is not identifiable "
                     "(fitted without it)")
    if driver_flat:
        notes.append("the driver is the same in every bin: the background and the driver "
                     "coefficient are not separately identifiable (only their sum is)")
    if not converged:
        notes.append(f"EM stopped after {iterations} iterations without converging "
                     f"(last relative log-likelihood change {change:.3g})")
    return "; ".join(notes)


def as_dict(fit: HawkesFit, places: int = 4) -> dict[str, Any]:
    """The fit as JSON-ready values, floats rounded for people.

    The branching ratio, mean lag and log-likelihood are rounded to ``places`` decimal places
    (``round(x, places)``); the two rates (background per second, driver coefficient), which
    are small numbers, to ``places`` significant digits. None stays None (JSON null); ints,
    bools and the note are kept as they are.
    """
    significant = {"background_per_s", "driver_coefficient"}
    out: dict[str, Any] = {}
    for field in fields(fit):
        value = getattr(fit, field.name)
        if isinstance(value, float):
            value = _significant(value, places) if field.name in significant else round(
                value, places)
        out[field.name] = value
    return out


def _significant(x: float, digits: int) -> float:
    """x to ``digits`` significant digits (0 stays 0)."""
    if x == 0.0 or not math.isfinite(x):
        return x
    return round(x, max(digits, 1) - 1 - math.floor(math.log10(abs(x))))


# --- input -----------------------------------------------------------------------------------


def _is_int(x: object) -> bool:
    """An integer (Python's or NumPy's), not a bool."""
    return isinstance(x, Integral) and not isinstance(x, bool)


def _check_options(bins: int, max_lag: int, tol: float, max_iter: int) -> None:
    if not _is_int(bins) or bins <= 0:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if not _is_int(max_lag) or max_lag < 1:
        raise ValueError(f"max_lag must be an integer >= 1, got {max_lag!r}")
    if not tol > 0.0:
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not _is_int(max_iter) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")


def _event_counts(counts: Mapping[int, int], bins: int) -> dict[int, int]:
    """The nonzero counts, checked: integer bins in [0, bins), integer counts >= 0."""
    events: dict[int, int] = {}
    for at, count in counts.items():
        if not _is_int(at) or not 0 <= at < bins:
            raise ValueError(f"bin {at!r} is not an integer in [0, {bins})")
        if not _is_int(count) or count < 0:
            raise ValueError(f"count {count!r} at bin {at} is not an integer >= 0")
        if count:
            events[int(at)] = int(count)
    return events


def _checked_driver(driver: Sequence[float] | None, bins: int) -> tuple[float, bool]:
    """sum_t x_t and whether x_t is the same in every bin, after checking the driver has one
    finite value >= 0 per bin. (0.0, False) without a driver."""
    if driver is None:
        return 0.0, False
    if len(driver) != bins:
        raise ValueError(f"driver has {len(driver)} values for {bins} bins")
    for t, x in enumerate(driver):
        if not 0.0 <= x < math.inf:  # also false for NaN
            raise ValueError(f"driver value {x!r} at bin {t} is not a finite number >= 0")
    return math.fsum(driver), min(driver) == max(driver)


def _prepare(events: dict[int, int], bins: int, driver: Sequence[float] | None,
             total_drive: float, max_lag: int) -> _Data:
    at = tuple(sorted(events))
    count = tuple(events[s] for s in at)
    left = [(c, bins - 1 - s) for s, c in zip(at, count, strict=True)]
    return _Data(
        count=count,
        drive=tuple(float(driver[s]) for s in at) if driver is not None else (0.0,) * len(at),
        steps=_window_steps(at, count, max_lag),
        tail=tuple((c, m) for c, m in left if m < max_lag),
        settled=sum(c for c, m in left if m >= max_lag),
        log_factorials=math.fsum(math.lgamma(c + 1) for c in count),
        bins=bins, total_drive=total_drive, max_lag=max_lag,
    )


def _window_steps(at: tuple[int, ...], count: tuple[int, ...], max_lag: int) -> tuple[_Step, ...]:
    """What changes in the K-second window of earlier event bins from one event bin to the
    next (``_Data.steps``)."""
    steps: list[_Step] = []
    lo = 0  # the first event bin within K seconds before the current one
    for i in range(1, len(at)):
        start = lo
        while at[i] - at[lo] > max_lag:
            lo += 1
        if lo == i:
            steps.append((at[i] - at[i - 1], 0, ()))
            continue
        leaving = tuple((count[p], at[i] - at[p] - 1) for p in range(start, lo))
        steps.append((at[i] - at[i - 1], count[i - 1], leaving))
    return tuple(steps)


def _unidentified(events: int, bins: int, event_bins: int, with_driver: bool,
                  why: str) -> HawkesFit:
    return HawkesFit(
        branching_ratio=None, background_per_s=None, driver_coefficient=None, mean_lag_s=None,
        log_likelihood=None, events=events, bins=bins, event_bins=event_bins, iterations=0,
        converged=False, with_driver=with_driver, note=why,
    )


# --- the kernel ------------------------------------------------------------------------------


def _one_minus_q_to(q: float, power: int) -> float:
    """1 - q^power, accurate when q is close to 1."""
    return -math.expm1(power * math.log(q))


def _first_weight(q: float, max_lag: int) -> float:
    """w_1 = (1 - q) / (1 - q^K); w_k = w_1 * q^(k-1)."""
    if max_lag == 1:
        return 1.0
    return (1.0 - q) / _one_minus_q_to(q, max_lag)


def _mean_lag(q: float, max_lag: int) -> float:
    """sum_k k * w_k, in seconds."""
    if max_lag == 1:
        return 1.0
    return 1.0 / (1.0 - q) - max_lag * q**max_lag / _one_minus_q_to(q, max_lag)


def _compensator(data: _Data, q: float) -> float:
    """sum_j N_j * W(T - 1 - j): the offspring the events could have had within the sample."""
    if data.max_lag == 1:
        return float(data.settled)
    log_q = math.log(q)
    within = math.fsum(-c * math.expm1(m * log_q) for c, m in data.tail)  # N_j (1 - q^m)
    return data.settled + within / _one_minus_q_to(q, data.max_lag)


def _decay_bounds(max_lag: int) -> tuple[float, float]:
    """log q from Q_MIN to 1 - 1/K (the untruncated geometric's mean lag at most K s)."""
    return math.log(Q_MIN), math.log1p(-1.0 / max_lag)


# --- EM --------------------------------------------------------------------------------------


def _em(data: _Data, with_driver: bool, tol: float,
        max_iter: int) -> tuple[_Params, float, int, bool, float]:
    """Iterate from the fixed start: (params, log-likelihood, iterations, converged, last
    relative change). One iteration is two EM steps and an extrapolated candidate
    (``_extrapolate``), kept only when its log-likelihood beats the second EM step's: the
    log-likelihood never decreases from one iteration to the next."""
    params = _start(data, with_driver)
    split, ll = _e_step(data, params)
    step_max = FIRST_STEP_MAX
    change = math.inf
    for iteration in range(1, max_iter + 1):
        once = _m_step(data, split, params.q)
        split_once, _ = _e_step(data, once)
        twice = _m_step(data, split_once, once.q)
        best, best_split, best_ll = twice, *_e_step(data, twice)
        jump = _extrapolate(data, (params, once, twice), step_max)
        if jump is not None:
            jump_split, jump_ll = _e_step(data, jump[0])
            better = jump_ll >= best_ll
            if better:
                best, best_split, best_ll = jump[0], jump_split, jump_ll
            if jump[1]:  # a step at its cap: allow longer ones if it paid, shorter if not
                step_max = step_max * 4.0 if better else max(FIRST_STEP_MAX, step_max / 4.0)
        change = abs(best_ll - ll) / max(1.0, abs(best_ll))
        params, split, ll = best, best_split, best_ll
        if change < tol:
            return params, ll, iteration, True, change
    return params, ll, max_iter, False, change


def _extrapolate(data: _Data, path: tuple[_Params, _Params, _Params],
                 step_max: float) -> tuple[_Params, bool] | None:
    """The squared-extrapolation step of SQUAREM (Varadhan and Roland, 2008, scheme S3) on
    (mu, gamma, n, q) from three successive EM iterates, projected back into the parameter
    space; and whether its step length was at the cap. None when EM has stopped moving.

    With r the first EM step and v the change between the two steps, the candidate is
    theta0 - 2 a r + a^2 v, a = -|r| / |v| clipped to [-step_max, -1] (a = -1 gives the
    second EM iterate itself). A rate may shrink at most 1000-fold (never to 0, where EM would
    leave it for good); q stays within its bounds. EM creeps along the flat ridges of this
    likelihood (a small n traded against a slow kernel); the extrapolation moves along them.
    """
    start, first, second = (_as_vector(p) for p in path)
    r = [b - a for a, b in zip(start, first, strict=True)]
    v = [c - 2.0 * b + a for a, b, c in zip(start, first, second, strict=True)]
    rr, vv = sum(x * x for x in r), sum(x * x for x in v)
    if vv == 0.0:
        return None
    a = max(-step_max, min(-1.0, -math.sqrt(rr / vv)))
    mu, gamma, n, q = (s - 2.0 * a * dr + a * a * dv for s, dr, dv in zip(start, r, v,
                                                                          strict=True))
    last = path[2]
    if data.max_lag == 1:
        q = last.q  # w_1 = 1 whatever q is
    else:
        lo, hi = (math.exp(x) for x in _decay_bounds(data.max_lag))
        q = max(lo, min(hi, q))
    jump = _Params(mu=max(mu, last.mu * MAX_SHRINK), gamma=max(gamma, last.gamma * MAX_SHRINK),
                   n=max(n, last.n * MAX_SHRINK), q=q)
    return jump, a == -step_max


def _as_vector(params: _Params) -> tuple[float, float, float, float]:
    return params.mu, params.gamma, params.n, params.q


def _start(data: _Data, with_driver: bool) -> _Params:
    """Equal shares of the events to the background, the driver (if any) and excitation."""
    events = sum(data.count)
    use_driver = with_driver and data.total_drive > 0.0
    share = events / (3.0 if use_driver else 2.0)
    q = Q_START if data.max_lag == 1 else min(Q_START, math.exp(_decay_bounds(data.max_lag)[1]))
    return _Params(
        mu=share / data.bins,
        gamma=share / data.total_drive if use_driver else 0.0,
        n=share / _compensator(data, q),
        q=q,
    )


def _excitation_sums(data: _Data, q: float) -> tuple[list[float], list[float]]:
    """For each event bin i, A_i = sum_p N_p q^(l-1) and B_i = sum_p N_p (l-1) q^(l-1) over the
    earlier event bins p within K seconds (l = s_i - s_p). n * w_1 * A_i is the excitation
    and n * w_1 * B_i its offspring's total extra lag.

    A recursion over the event bins: moving on by d seconds multiplies every term by q^d (and
    adds d to every l - 1), the previous event bin joins, and those now more than K seconds
    back leave. An empty window starts again from exactly 0.
    """
    a_sums = [0.0] * len(data.count)
    b_sums = [0.0] * len(data.count)
    a = b = 0.0
    for i, (gap, joining_count, leaving) in enumerate(data.steps, start=1):
        if joining_count == 0:  # nothing within K seconds
            a = b = 0.0
            continue
        decay = q**gap
        joining = joining_count * q ** (gap - 1)
        a, b = decay * a + joining, decay * (b + gap * a) + (gap - 1) * joining
        for count, lag in leaving:
            gone = count * q**lag
            a -= gone
            b -= lag * gone
        if a < 0.0 or b < 0.0:  # rounding, when what left was nearly all of it
            a, b = max(a, 0.0), max(b, 0.0)
        a_sums[i], b_sums[i] = a, b
    return a_sums, b_sums


def _e_step(data: _Data, params: _Params) -> tuple[_Split, float]:
    """The expected split of the events among the sources, and the log-likelihood."""
    mu, gamma, q = params.mu, params.gamma, params.q
    excite = params.n * _first_weight(q, data.max_lag)
    a_sums, b_sums = _excitation_sums(data, q)
    background = driven = offspring = extra_lag = log_rates = 0.0
    for count, x, a, b in zip(data.count, data.drive, a_sums, b_sums, strict=True):
        from_driver = gamma * x
        from_past = excite * a
        rate = mu + from_driver + from_past
        share = count / rate
        background += share * mu
        driven += share * from_driver
        offspring += share * from_past
        extra_lag += share * excite * b
        log_rates += count * math.log(rate)
    expected_total = (mu * data.bins + gamma * data.total_drive
                      + params.n * _compensator(data, q))
    ll = log_rates - data.log_factorials - expected_total
    return _Split(background, driven, offspring, extra_lag), ll


def _m_step(data: _Data, split: _Split, q_now: float) -> _Params:
    """The closed-form rates and the best decay for the expected split."""
    q = _best_decay(data, split, q_now)
    return _Params(
        mu=split.background / data.bins,
        gamma=split.driven / data.total_drive if data.total_drive > 0.0 else 0.0,
        n=split.offspring / _compensator(data, q),
        q=q,
    )


def _decay_objective(data: _Data, split: _Split, q: float) -> float:
    """The excitation part of the expected complete log-likelihood with n at its best for q:
    sum over offspring of log w_lag, minus (offspring) * log(compensator) (constants dropped).
    """
    log_w1 = math.log(_first_weight(q, data.max_lag))
    return (split.offspring * log_w1 + split.offspring_extra_lag * math.log(q)
            - split.offspring * math.log(_compensator(data, q)))


def _best_decay(data: _Data, split: _Split, q_now: float) -> float:
    """Golden-section search on log q; never worse than the current q (so EM still climbs)."""
    if data.max_lag == 1 or split.offspring <= 0.0:
        return q_now
    lo, hi = _decay_bounds(data.max_lag)
    x1, x2 = hi - INV_PHI * (hi - lo), lo + INV_PHI * (hi - lo)
    f1 = _decay_objective(data, split, math.exp(x1))
    f2 = _decay_objective(data, split, math.exp(x2))
    while hi - lo > GOLDEN_TOL:
        if f1 >= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - INV_PHI * (hi - lo)
            f1 = _decay_objective(data, split, math.exp(x1))
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + INV_PHI * (hi - lo)
            f2 = _decay_objective(data, split, math.exp(x2))
    best = math.exp((lo + hi) / 2.0)
    if _decay_objective(data, split, best) >= _decay_objective(data, split, q_now):
        return best
    return q_now
