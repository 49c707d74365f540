"""Integer arithmetic of the venue: every division names its rounding (docs/design.md §2).

The constants that fix the venue's units and bounds live here too, so that every part reads
them from one place.
"""

from __future__ import annotations

from gaemi.engine.codes import SelfTradePrevention, Side, TimeInForce
from gaemi.risk.markets import PPB

__all__ = [
    "BUY", "CLIENT_ID_MAX", "DEFAULT_LEVERAGE", "EMA_SCALE", "MAX_AMOUNT",
    "MAX_FUNDINGS_PER_STEP", "SELL", "SIDE_TYPES", "STP", "TIF_TYPES", "ceil_div", "ema", "fee",
    "is_int", "next_multiple", "toward_zero",
]

MAX_AMOUNT = 10**15  # one deposit or withdrawal: a billion dollars
DEFAULT_LEVERAGE = 10
EMA_SCALE = 1_000_000  # EMAs of prices keep six decimal places of a tick
# one AdvanceTime settles at most this many funding intervals of any market (bounded work)
MAX_FUNDINGS_PER_STEP = 1_000
CLIENT_ID_MAX = 36
BUY, SELL = int(Side.BUY), int(Side.SELL)  # plain ints: cheaper to compare than the enum
STP = SelfTradePrevention.CANCEL_RESTING  # an account's own resting order leaves, not the taker
SIDE_TYPES = (int, Side)
TIF_TYPES = (int, TimeInForce)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def toward_zero(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def is_int(value: object) -> bool:
    """A plain int (or an IntEnum): never a bool."""
    return isinstance(value, int) and value.__class__ is not bool


def next_multiple(ts: int, step: int) -> int:
    return (ts // step + 1) * step


def fee(notional: int, rate_ppb: int) -> int:
    """Fees round up; a rebate (negative rate) rounds down in size."""
    return ceil_div(notional * rate_ppb, PPB) if rate_ppb >= 0 else \
        -(notional * -rate_ppb // PPB)


def ema(prev: int | None, sample: int, tau_s: int, count: int) -> int:
    """``count`` one-second steps of an EMA with time constant ``tau_s``, scaled by EMA_SCALE.
    After 20 tau the EMA equals the sample (its residue is below 1e-8 of the gap)."""
    target = sample * EMA_SCALE
    if prev is None or count >= 20 * tau_s:
        return target
    value = prev
    for _ in range(count):
        value += toward_zero(target - value, tau_s)
    return value
