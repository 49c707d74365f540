"""Stage 5 of the pipeline: bring the venue to rest after a command.

Until nothing is due: the touched accounts are re-keyed (upkeep), every market whose book,
index or time changed is repriced (which may publish a mark and release conditional orders),
every market whose mark or keys moved is swept for liquidatable accounts, and the first one
found is liquidated; then the loop starts again, since a liquidation moves the book, the mark
and other accounts. A fill moves the last price, an input of the mark, so this runs after
every accepted command that can trade or move money (docs/architecture.md, "The pipeline").
"""

from __future__ import annotations

from collections import OrderedDict

from gaemi.risk.events import Cause
from gaemi.risk.venue.index import candidates
from gaemi.risk.venue.liquidation import deleverage_fund, liquidate
from gaemi.risk.venue.margin import liquidatable
from gaemi.risk.venue.pricing import reprice
from gaemi.risk.venue.state import State
from gaemi.risk.venue.upkeep import flush_touched

__all__ = ["stabilise"]


def stabilise(st: State) -> None:
    """Reprice, fire triggers, liquidate until nothing is due."""
    markets = st.markets
    if not st.touched and not st.dirty and not st.stale_keys \
            and not any(m.sweep for m in markets.values()):
        return
    pending: OrderedDict[tuple[int, str], Cause] = OrderedDict()
    clean: dict[tuple[int, str], tuple[int, int]] = {}
    while True:
        flush_touched(st)
        while st.dirty:
            symbol = min(st.dirty)
            st.dirty.discard(symbol)
            reprice(st, markets[symbol])
            flush_touched(st)
        for symbol, m in markets.items():
            if not m.sweep:
                continue
            m.sweep = False
            if m.status != "open" or not m.mark:
                continue
            for aid in candidates(m):
                key = (aid, symbol)
                if key in pending:
                    continue
                acct = st.account_or_fund(aid)
                if clean.get(key) == (st.mark_epoch, acct.version):
                    continue
                if liquidatable(st, acct, m):
                    pending[key] = m.cause
                else:
                    clean[key] = (st.mark_epoch, acct.version)
        if not pending:
            return
        (aid, symbol), why = pending.popitem(last=False)
        acct = st.account_or_fund(aid)
        m = markets[symbol]
        if liquidatable(st, acct, m):
            if aid < 0:
                if m.spec.liquidation_venue != "backstop":  # a backstop has no limit
                    deleverage_fund(st, m, why)
            else:
                liquidate(st, acct, m, why)
