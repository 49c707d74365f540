"""Binance's request weights: each route costs a weight (more for wide answers), an address may
spend ``limit`` a minute (Binance: 2,400), every answer says how much it has used in the
current minute (``X-MBX-USED-WEIGHT-1M``), and a request over the limit is refused with HTTP
429 and ``-1003`` before it does anything. Minutes are the server clock's, fixed windows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

__all__ = ["DEFAULT_LIMIT", "Weights", "weight_of"]

DEFAULT_LIMIT = 2_400
MINUTE_MS = 60_000


Rule = Callable[[Mapping[str, str]], int]


def _by_limit(steps: tuple[tuple[int, int], ...], default: int) -> Rule:
    """A weight that grows with the ``limit`` parameter: the first (bound, weight) whose
    bound is at least the limit."""
    def weight(params: Mapping[str, str]) -> int:
        text = params.get("limit", "")
        limit = int(text) if text.isascii() and text.isdigit() and len(text) < 10 else default
        return next((w for bound, w in steps if limit <= bound), steps[-1][1])
    return weight


def _all_or_one(one: int, every: int) -> Rule:
    return lambda params: one if params.get("symbol") else every


# (method, path) -> weight, or a function of the parameters; Binance's published figures
_WEIGHTS: dict[tuple[str, str], int | Rule] = {
    ("GET", "/fapi/v1/depth"): _by_limit(((50, 2), (100, 5), (500, 10), (1000, 20)), 500),
    ("GET", "/fapi/v1/klines"): _by_limit(((99, 1), (499, 2), (1000, 5), (1500, 10)), 500),
    ("GET", "/fapi/v1/trades"): 5,
    ("GET", "/fapi/v1/aggTrades"): 20,
    ("GET", "/fapi/v1/ticker/24hr"): _all_or_one(1, 40),
    ("GET", "/fapi/v1/ticker/price"): _all_or_one(1, 2),
    ("GET", "/fapi/v2/ticker/price"): _all_or_one(1, 2),
    ("GET", "/fapi/v1/ticker/bookTicker"): _all_or_one(2, 5),
    ("GET", "/fapi/v1/premiumIndex"): _all_or_one(1, 10),
    ("GET", "/fapi/v1/openOrders"): _all_or_one(1, 40),
    ("GET", "/fapi/v2/account"): 5, ("GET", "/fapi/v3/account"): 5,
    ("GET", "/fapi/v2/balance"): 5, ("GET", "/fapi/v3/balance"): 5,
    ("GET", "/fapi/v2/positionRisk"): 5, ("GET", "/fapi/v3/positionRisk"): 5,
    ("GET", "/fapi/v1/positionSide/dual"): 30,
    ("GET", "/fapi/v1/userTrades"): 5,
    ("GET", "/fapi/v1/income"): 30,
    ("GET", "/fapi/v1/allOrders"): 5,
    ("GET", "/fapi/v1/commissionRate"): 20,
}


def weight_of(method: str, path: str, params: Mapping[str, str]) -> int:
    """The weight of a request (1 for every route not listed)."""
    rule = _WEIGHTS.get((method, path), 1)
    return rule if isinstance(rule, int) else rule(params)


class Weights:
    """Weight used by each address in the current minute."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.minute = -1
        self.used: dict[str, int] = {}

    def take(self, address: str, weight: int, now_ms: int) -> tuple[bool, int]:
        """Spend ``weight``: (allowed, the weight used this minute afterwards). A refused
        request spends nothing."""
        minute = now_ms // MINUTE_MS
        if minute != self.minute:
            self.minute = minute
            self.used.clear()
        used = self.used.get(address, 0)
        if used + weight > self.limit:
            return False, used
        self.used[address] = used + weight
        return True, used + weight
