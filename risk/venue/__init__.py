"""The venue: the sequenced pipeline that owns the books and the accounts (``Venue``, in
core.py, which also says how the parts depend on each other)."""

from gaemi.risk.venue.arith import DEFAULT_LEVERAGE, MAX_AMOUNT, MAX_FUNDINGS_PER_STEP
from gaemi.risk.venue.core import Venue

__all__ = ["DEFAULT_LEVERAGE", "MAX_AMOUNT", "MAX_FUNDINGS_PER_STEP", "Venue"]
