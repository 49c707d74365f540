"""Prices and time: the mark (from the index, the book and the samples), the funding rate and
its settlement, the underlying's sessions, and the samples that venue time takes as it moves
(docs/architecture.md, "Index and mark", "Funding").

``reprice`` recomputes a market's mark; a new mark is published, re-keys the multi-market
accounts whose band it left, and releases the conditional orders it crossed. ``advance``
moves a market to a new time: the one-second basis samples, the premium samples (and, while
the underlying is closed, the book-driven index), and every funding settlement that falls
due. Between two commands the book does not change, so repeated samples are applied in
closed form and one ``AdvanceTime`` does bounded work.
"""

from __future__ import annotations

from fractions import Fraction

from gaemi.risk.calendar import NS_PER_DAY, NS_PER_SECOND
from gaemi.risk.events import (
    Cause,
    FundingPayment,
    FundingSettled,
    MarkUpdated,
    TradingStatusChanged,
)
from gaemi.risk.markets import EIGHT_HOURS_NS, PPB
from gaemi.risk.venue.arith import EMA_SCALE, ceil_div, ema, next_multiple, toward_zero
from gaemi.risk.venue.margin import limit_band
from gaemi.risk.venue.orders import fire_triggers
from gaemi.risk.venue.settlement import credit
from gaemi.risk.venue.state import Market, State

__all__ = ["advance", "estimate_rate", "reprice", "update_session"]


def reprice(st: State, m: Market) -> None:
    """Recompute the mark; on a change, publish it, re-key multi-market accounts and release
    the conditional orders it crossed."""
    mark = _compute_mark(st, m)
    if mark is not None and mark != m.mark:
        m.mark = mark
        st.mark_epoch += 1
        st.events.append(MarkUpdated(m.symbol, st.time, m.index, mark, estimate_rate(m),
                                     m.next_funding, m.long_oi))
        m.sweep = True
        if len(m.liq_key) != len(m.holders):  # the first mark: key every position
            for aid in m.holders:
                st.account_or_fund(aid).version += 1
                st.touched.add(aid)
        # multi-market accounts keyed for a mark band this mark has left: O(log n + k)
        for _, aid in m.band_lo.irange((mark + 1, -2**63), None):
            st.stale_keys.add(aid)
        for _, aid in m.band_hi.irange(None, (mark - 1, 2**63)):
            st.stale_keys.add(aid)
        if m.status == "open":
            fire_triggers(st, m)


def _compute_mark(st: State, m: Market) -> int | None:
    index = m.index
    if not index:
        return None
    spec = m.spec
    bid, ask = m.book.best_bid(), m.book.best_ask()
    if spec.mark_method == "median3":
        ttf = m.next_funding - st.time
        p1 = index + toward_zero(index * estimate_rate(m) * ttf,
                                 spec.funding_interval_ns * PPB)
        p2 = index + (toward_zero(m.basis_sum, len(m.basis)) if m.basis else 0)
        p3 = m.last_price if m.last_price is not None else index
        mark = sorted((p1, p2, p3))[1]
    else:
        inputs = []
        if m.ema_basis is not None:
            inputs.append(index + toward_zero(m.ema_basis, EMA_SCALE))
        else:
            inputs.append(index)
        local = [p for p in (bid, ask, m.last_price) if p is not None]
        if len(local) == 3:
            inputs.append(sorted(local)[1])
        if m.ema_local is not None:
            inputs.append(toward_zero(m.ema_local, EMA_SCALE))
        inputs.sort()
        mark = inputs[len(inputs) // 2] if len(inputs) % 2 else \
            (inputs[len(inputs) // 2 - 1] + inputs[len(inputs) // 2]) // 2
    lo, hi = limit_band(m)
    return min(max(mark, lo, 1), hi)


def estimate_rate(m: Market) -> int:
    """The funding rate the coming settlement would pay now, ppb per interval (cached until
    the next premium sample or settlement)."""
    if m.rate_cache is not None:
        return m.rate_cache
    spec = m.spec
    premium = toward_zero(m.prem_sum, m.prem_weight) if m.prem_weight else 0
    gap = spec.funding_interest_ppb - premium
    rate_8h = premium + max(-spec.funding_clamp_ppb, min(spec.funding_clamp_ppb, gap))
    rate_8h = max(-spec.funding_cap_ppb, min(spec.funding_cap_ppb, rate_8h))
    m.rate_cache = toward_zero(rate_8h * spec.funding_interval_ns, EIGHT_HOURS_NS)
    return m.rate_cache


def _impact_price(m: Market, levels: list[tuple[int, int]]) -> Fraction | None:
    """Average price of a market order of the impact notional against ``levels``."""
    target = m.spec.impact_notional
    qty = value = 0
    for price, size in levels:
        step = price * m.mult
        take = min(size, ceil_div(target - value * m.mult, step))
        qty += take
        value += take * price
        if value * m.mult >= target:
            return Fraction(value, qty)
    return None


def _premium_sample(m: Market) -> int:
    """(max(0, impact bid - index) - max(0, index - impact ask)) / index, in ppb; 0 when a
    side is too thin (dYdX)."""
    if not m.index:
        return 0
    bids, asks = m.book.depth(64)
    ib, ia = _impact_price(m, bids), _impact_price(m, asks)
    if ib is None or ia is None:
        return 0
    index = m.index
    diff = max(Fraction(0), ib - index) - max(Fraction(0), index - ia)
    value = diff * PPB / index
    return int(value)  # toward zero


# -- time ----------------------------------------------------------------------------------------

def advance(st: State, m: Market, target: int) -> None:
    """Take the samples and settle the fundings that fall in (time, target]."""
    spec = m.spec
    while True:
        end = min(target, m.next_funding)
        _sample_until(m, end)
        if end < m.next_funding:
            return
        st.time = end
        update_session(st, m, end)
        _settle_funding(st, m, end)
        m.next_funding += spec.funding_interval_ns


def _sample_until(m: Market, end: int) -> None:
    spec = m.spec
    if not m.index:
        m.next_sample = max(m.next_sample, next_multiple(end, NS_PER_SECOND))
        m.next_premium = max(m.next_premium, next_multiple(end, spec.premium_sample_ns))
        return
    # premium samples (and, while the underlying is closed, the book-driven index)
    if m.next_premium <= end:
        count = (end - m.next_premium) // spec.premium_sample_ns + 1
        drifting = spec.index_when_closed == "book" and not m.session_open
        if drifting:
            _drift_samples(m, count)
        else:
            _add_premium(m, _premium_sample(m), count)
        m.next_premium += count * spec.premium_sample_ns
    # one-second samples of (mid - index) for the mark's basis
    if m.next_sample <= end:
        count = (end - m.next_sample) // NS_PER_SECOND + 1
        bid, ask = m.book.best_bid(), m.book.best_ask()
        if bid is not None and ask is not None:
            basis = (bid + ask) // 2 - m.index
            for _ in range(min(count, spec.basis_window_s)):
                if len(m.basis) == m.basis.maxlen:
                    m.basis_sum -= m.basis[0]
                m.basis.append(basis)
                m.basis_sum += basis
            if spec.mark_method == "hl":
                local = sorted((bid, ask, m.last_price if m.last_price is not None
                                else (bid + ask) // 2))[1]
                m.ema_basis = ema(m.ema_basis, basis, spec.mark_ema_s, count)
                m.ema_local = ema(m.ema_local, local, 30, count)
        m.next_sample += count * NS_PER_SECOND


def _add_premium(m: Market, sample: int, count: int) -> None:
    if m.spec.premium_weighting == "linear":
        first = m.prem_n + 1  # weights first .. first + count - 1
        weight = count * first + count * (count - 1) // 2
    else:
        weight = count
    m.prem_sum += sample * weight
    m.prem_weight += weight
    m.prem_n += count
    m.rate_cache = None


def _drift_samples(m: Market, count: int) -> None:
    """``count`` premium samples while the book drives the index: before each one the index
    drifts (``_drift_index``). Between two commands the book does not change, so while the
    index stays put every step adds the same increment to the residue and takes the same
    sample: those steps are applied in bulk, and only the steps that move the index are taken
    one by one (their number is bounded by the distance in ticks, not by the time elapsed).
    The result is the same as ``count`` single steps."""
    left = count
    while left:
        d = _drift_increment(m)
        if not d:  # a fixed point: the rest of the samples are all alike
            _add_premium(m, _premium_sample(m), left)
            return
        r = m.drift_residue  # |r| < EMA_SCALE: the index moves when |r + n*d| reaches it
        need = ceil_div(EMA_SCALE - r, d) if d > 0 else ceil_div(EMA_SCALE + r, -d)
        quiet = min(max(need, 1) - 1, left)
        if quiet:
            m.drift_residue += quiet * d
            _add_premium(m, _premium_sample(m), quiet)
            left -= quiet
        if left:
            _drift_index(m)
            _add_premium(m, _premium_sample(m), 1)
            left -= 1


def _drift_increment(m: Market) -> int:
    """What one drift step adds to the residue at the current index and book: dt / tau of
    the gap to the impact prices, in 1/EMA_SCALE ticks (0 when a side is too thin)."""
    bids, asks = m.book.depth(64)
    ib, ia = _impact_price(m, bids), _impact_price(m, asks)
    if ib is None or ia is None:
        return 0
    index = m.index
    gap = max(Fraction(0), ib - index) - max(Fraction(0), index - ia)
    dt = min(m.spec.premium_sample_ns // NS_PER_SECOND, m.spec.index_drift_tau_s // 10)
    return int(gap * dt * EMA_SCALE / m.spec.index_drift_tau_s)


def _drift_index(m: Market) -> None:
    """While the underlying is closed, move the index toward the book's impact mid by
    dt / tau of the gap (trade.xyz's internal pricing, step capped at 10% of tau)."""
    # keep the sub-tick part of each step, so small gaps still move the index over time
    m.drift_residue += _drift_increment(m)
    step = toward_zero(m.drift_residue, EMA_SCALE)
    if step:
        m.drift_residue -= step * EMA_SCALE
        m.index = max(1, m.index + step)


def update_session(st: State, m: Market, ts: int) -> None:
    """The underlying opened or closed (an event); the daily limit's reference rolls."""
    spec = m.spec
    if spec.session is None:  # the underlying never closes: the limit rolls at 00:00 UTC
        if ts // NS_PER_DAY != m.limit_day and m.index:
            m.prev_close = m.index
        m.limit_day = ts // NS_PER_DAY
        return
    open_now = spec.session.is_open(ts)
    if open_now == m.session_open:
        return
    if m.session_open and not open_now and m.index:
        m.prev_close = m.index  # the close the next day's price limit refers to
    m.session_open = open_now
    st.events.append(TradingStatusChanged(m.symbol, m.status, open_now))


def _settle_funding(st: State, m: Market, ts: int) -> None:
    spec = m.spec
    reprice(st, m)
    gated = (not m.session_open and not spec.funding_when_closed) or m.status != "open"
    rate = 0 if gated or not m.mark else estimate_rate(m)
    price = m.mark if spec.funding_price == "mark" else m.index
    per_lot = toward_zero(price * rate * m.mult, PPB)
    paid = 0
    if per_lot:
        for aid, slot in sorted(m.holders.items()):
            acct = st.account_or_fund(aid)
            amount = -slot.size * per_lot
            credit(st, acct, slot if aid > 0 else None, amount)
            st.funding_net += amount
            paid += max(0, -amount)
            st.events.append(FundingPayment(aid, m.symbol, slot.size, amount))
    st.events.append(FundingSettled(m.symbol, ts, rate, price, per_lot, m.long_oi, paid))
    m.last_funding_rate = rate
    m.prem_sum = m.prem_weight = m.prem_n = 0
    m.rate_cache = None
    if per_lot:
        m.cause = Cause("funding", st.cur_seq)
        st.dirty.add(m.symbol)
