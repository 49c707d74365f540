"""The momentum taker: follows the price's recent move with market orders, within a position
limit (docs/bots.md).

It keeps the prices of the last ``lookback_s`` seconds (every trade on ``trades.<symbol>``
and every mark, or only one of the two). When the latest price is ``threshold_bps`` or more
above the oldest in the window it buys ``order_usd`` of notional with a market order; as far
below, it sells. The position stays within ``±max_position_usd`` (an order is cut to fit;
none is sent when at the limit). After each order the window starts again from the latest
price, so one move of the threshold's size makes one order, and no order follows another
within ``cooldown_s``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from gaemi.clients.live.bots.base import BPS, UNIT, Bot, BotParams
from gaemi.clients.live.client import Push, RequestError

__all__ = ["Momentum", "MomentumParams"]


@dataclass
class MomentumParams(BotParams):
    lookback_s: float = 10.0  # the window of prices the move is measured over
    threshold_bps: int = 20  # the move that counts as momentum (0.20%)
    order_usd: int = 2_000  # each order, US dollars at the mark
    max_position_usd: int = 20_000  # position limit, either way
    cooldown_s: float = 1.0  # the least time between two orders
    source: str = "both"  # prices followed: "trades", "mark" or "both"


class Momentum(Bot):
    name: ClassVar[str] = "momentum"
    Params: ClassVar[type[BotParams]] = MomentumParams
    extra_channels: ClassVar[tuple[str, ...]] = ("trades",)
    params: MomentumParams

    def __init__(self, params: MomentumParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.prices: deque[tuple[float, int]] = deque()  # (loop time, price)
        self.last_order_at: float | None = None

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _sample(self, price: int) -> None:
        now = self._now()
        self.prices.append((now, price))
        horizon = now - self.params.lookback_s
        while len(self.prices) > 1 and self.prices[0][0] < horizon:
            self.prices.popleft()

    def on_mark(self, data: dict[str, Any]) -> None:
        if self.params.source in ("mark", "both"):
            self._sample(data["mark"])

    def on_public(self, push: Push) -> None:
        if push["ch"].startswith("trades.") and self.params.source in ("trades", "both"):
            self._sample(push["data"]["price"])
            self.wake()

    def signal(self) -> int:
        """The move over the window in basis points (rounded toward zero)."""
        if len(self.prices) < 2:
            return 0
        first, last = self.prices[0][1], self.prices[-1][1]
        size = abs(last - first) * BPS // first
        return size if last >= first else -size

    async def start(self) -> None:
        p = self.params
        if self.mark is not None and p.source in ("mark", "both"):
            self._sample(self.mark)  # the move is measured from the mark at start
        self.say(f"{self.name}: following {p.threshold_bps} bp moves over {p.lookback_s:g}s "
                 f"on {p.symbol} ({p.source}), {self.usd(p.order_usd * UNIT)} an order")

    async def step(self) -> None:
        client = self.client
        assert client is not None and self.mark is not None
        p = self.params
        if self.last_order_at is not None and self._now() - self.last_order_at < p.cooldown_s:
            return
        move = self.signal()
        if abs(move) < p.threshold_bps:
            return
        side = "BUY" if move > 0 else "SELL"
        limit = self.lots_for(p.max_position_usd, self.mark)
        room = limit - self.position if side == "BUY" else limit + self.position
        qty = min(self.lots_for(p.order_usd, self.mark), room)
        if qty <= 0:
            return
        self.last_order_at = self._now()
        self.prices = deque([self.prices[-1]])  # the next move is measured from here
        result = await self.order("order.place", client.market(p.symbol, side, qty))
        if not isinstance(result, RequestError):
            self.say(f"{self.name}: {move:+d} bp: {side} {qty} lots -> {result['status']} "
                     f"{result['filledQty']}")
