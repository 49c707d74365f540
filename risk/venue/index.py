"""The liquidation index: each market keeps its positions in two sorted lists keyed by
liquidation price (longs trigger at or below their key, shorts at or above), so a mark update
costs O(log n + k) for the k accounts near or past their price (docs/architecture.md).

A key is the exact liquidation price given the account's other positions, widened by
``KEY_SLACK`` ticks to absorb the rounding up of the margin; the sweep confirms candidates
with the exact integer test. A cross account with positions in several markets is keyed as
if its other marks sat at the adverse edge of a ``MULTI_BAND_PPB`` band around their values
when it was keyed (a conservative key: it reaches the sweep earlier, never later), and is
re-keyed only when a mark leaves its band; each market keeps those bands in sorted lists too.
"""

from __future__ import annotations

from gaemi.risk.markets import PPB
from gaemi.risk.venue.state import Account, Market, Slot, State

__all__ = ["KEY_SLACK", "MULTI_BAND_PPB", "NO_LONG_KEY", "candidates", "liquidation_key",
           "rebase", "rekey"]

KEY_SLACK = 2  # ticks by which a liquidation key is widened
MULTI_BAND_PPB = 10_000_000  # 1%: the mark band a multi-market account is keyed for
NO_LONG_KEY = -1  # a long that no positive price can liquidate


def rekey(st: State, acct: Account, m: Market, slot: Slot) -> None:
    """Put the account's key in the market's lists (or take it out), if it changed."""
    aid = acct.account_id
    old = m.liq_key.get(aid)
    new = None
    if slot.size and m.mark:
        new = (slot.size > 0, liquidation_key(st, acct, m, slot))
    if old == new:
        return
    m.sweep = True
    if old is not None:
        (m.liq_long if old[0] else m.liq_short).remove((old[1], aid))
        del m.liq_key[aid]
    if new is not None:
        (m.liq_long if new[0] else m.liq_short).add((new[1], aid))
        m.liq_key[aid] = new


def liquidation_key(st: State, acct: Account, m: Market, slot: Slot) -> int:
    """The price at or beyond which the account may be liquidatable in this market (the
    exact liquidation price widened by KEY_SLACK ticks toward the mark side)."""
    mult = m.mult
    if slot.isolated or acct.account_id < 0:
        k = (acct.wallet if acct.account_id < 0 else slot.margin) - slot.cost * mult
    else:
        k = acct.wallet - slot.cost * mult
        # the other positions at the adverse end of their mark bands (see ``rebase``)
        for symbol, other in acct.slots.items():
            if other is slot or not other.size or other.isolated:
                continue
            om = st.markets[symbol]
            center = acct.centers.get(symbol, om.mark)
            if not center:
                continue
            edge = max(1, center * MULTI_BAND_PPB // PPB)
            price = center - edge if other.size > 0 else center + edge
            k += (other.size * price - other.cost) * om.mult \
                - om.spec.maintenance(abs(other.size) * price * om.mult)
    s = slot.size
    a = abs(s)
    spec = m.spec
    # equity(P) - MM(P) = k + s*P*mult - (a*P*mult*mmr/1e9 - cum) is monotone in P; its root
    # is num/den in the tier whose bracket holds the root's notional a*num*mult/den
    lower = 0
    num = den = 1
    for tier, cum in zip(spec.tiers, spec.cums, strict=True):
        if s > 0:
            num, den = (-k - cum) * PPB, a * mult * (PPB - tier.mmr_ppb)
        else:
            num, den = (k + cum) * PPB, a * mult * (PPB + tier.mmr_ppb)
        scaled = num * a * mult  # notional of the root, times den
        upper = tier.max_notional
        if (upper is None or scaled <= upper * den) and (lower == 0 or scaled > lower * den):
            break
        lower = upper or 0
    if s > 0:  # liquidatable below the root; never, if the root is not positive
        return NO_LONG_KEY if num <= 0 else num // den + KEY_SLACK
    # a short is liquidatable above the root; at every price, if it is not positive
    return 0 if num <= 0 else -(-num // den) - KEY_SLACK


def candidates(m: Market) -> list[int]:
    """The accounts whose key the mark has reached: longs first (highest key first), then
    shorts (lowest first)."""
    mark = m.mark
    if (not m.liq_long or m.liq_long[-1][0] < mark) and \
            (not m.liq_short or m.liq_short[0][0] > mark):
        return []  # nothing in reach: the common case
    longs = [aid for _, aid in m.liq_long.irange((mark, -2**63), None, reverse=True)]
    shorts = [aid for _, aid in m.liq_short.irange(None, (mark, 2**63))]
    return longs + shorts


def rebase(st: State, acct: Account) -> None:
    """Centre a multi-market cross account's mark bands on the current marks (and drop the
    bands of an account that is no longer in several markets)."""
    aid = acct.account_id
    if aid < 0:
        return
    markets = st.markets
    for symbol in list(acct.centers):
        m = markets[symbol]
        lo, hi = m.band_of.pop(aid)
        m.band_lo.remove((lo, aid))
        m.band_hi.remove((hi, aid))
    acct.centers.clear()
    if aid not in st.multi:
        return
    for symbol, slot in acct.slots.items():
        m = markets[symbol]
        if slot.size and not slot.isolated and m.mark:
            edge = max(1, m.mark * MULTI_BAND_PPB // PPB)
            lo, hi = m.mark - edge, m.mark + edge
            acct.centers[symbol] = m.mark
            m.band_of[aid] = (lo, hi)
            m.band_lo.add((lo, aid))
            m.band_hi.add((hi, aid))
