"""The market maker: quotes ``levels`` bids and asks around the mark, skewed against its
inventory, and keeps them there (docs/bots.md).

Quote centre: ``mark × (1 − skew_bps/10⁴ × position/max_position)``: long, it lowers both
sides (sells cheaper, buys cheaper) to shed inventory; short, it raises them. Level ``i``
(0 = the touch) sits ``half_spread_bps + i × level_step_bps`` from the centre, bids rounded
down and asks up to a tick. At the inventory limit the side that would add to it is pulled.
A quote that moved by at least ``requote_bps`` is amended in place (a price amend keeps the
order id); a quote that is gone (filled, canceled) is placed again; all the changes of one
step go out in one ``order.batch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gaemi.clients.live.bots.base import BPS, Bot, BotParams
from gaemi.clients.live.client import RequestError, place_args
from gaemi.engine.codes import RejectReason as R

__all__ = ["MarketMaker", "MarketMakerParams"]


@dataclass
class MarketMakerParams(BotParams):
    levels: int = 3  # quotes a side
    half_spread_bps: int = 10  # distance of the touch quotes from the centre (0.10%)
    level_step_bps: int = 10  # distance between levels
    level_usd: int = 2_000  # size of each quote, US dollars at the mark
    max_position_usd: int = 50_000  # inventory limit, either way, US dollars at the mark
    skew_bps: int = 20  # centre shift at the inventory limit
    requote_bps: int = 2  # a quote moves only when its target moved this much
    post_only: bool = True  # quotes never take (a quote that would cross waits a step)
    cancel_on_exit: bool = True  # pull every quote when the bot stops


@dataclass
class _Quote:
    order_id: int
    price: int
    qty: int  # lots placed


class MarketMaker(Bot):
    name: ClassVar[str] = "market-maker"
    Params: ClassVar[type[BotParams]] = MarketMakerParams
    params: MarketMakerParams

    def __init__(self, params: MarketMakerParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.quotes: dict[tuple[str, int], _Quote] = {}  # (side, level) -> resting quote
        self.qty = 0  # lots per quote, fixed at the first mark
        self._to_cancel: list[int] = []  # orders to cancel that are no longer tracked

    async def start(self) -> None:
        self.say(f"{self.name}: quoting {self.params.levels} levels a side on "
                 f"{self.params.symbol} around the mark")

    # -- targets ---------------------------------------------------------------------------------

    def targets(self) -> dict[tuple[str, int], int]:
        """(side, level) -> the price each quote should have now."""
        p = self.params
        mark = self.mark
        assert mark is not None
        if not self.qty:
            self.qty = self.lots_for(p.level_usd, mark)
        limit = max(1, self.lots_for(p.max_position_usd, mark))
        inventory = max(-limit, min(limit, self.position))
        centre = mark - mark * p.skew_bps * inventory // (BPS * limit)
        out: dict[tuple[str, int], int] = {}
        for i in range(p.levels):
            off = p.half_spread_bps + i * p.level_step_bps
            bid = centre * (BPS - off) // BPS  # rounded down
            ask = -(-centre * (BPS + off) // BPS)  # rounded up
            if bid >= ask:
                bid = ask - 1
            if self.position < limit and bid > 0:
                out[("BUY", i)] = bid
            if self.position > -limit:
                out[("SELL", i)] = ask
        return out

    def remaining(self, q: _Quote) -> int:
        return q.qty - self.filled_by_order.get(q.order_id, 0)

    # -- the step --------------------------------------------------------------------------------

    async def step(self) -> None:
        client = self.client
        assert client is not None and self.mark is not None
        p = self.params
        symbol = p.symbol
        # forget quotes that are gone
        for key, q in list(self.quotes.items()):
            if q.order_id in self.canceled or self.remaining(q) <= 0:
                del self.quotes[key]
        targets = self.targets()
        threshold = max(1, self.mark * p.requote_bps // BPS)
        ops: list[tuple[str, dict[str, Any]]] = []
        keys: list[tuple[str, int] | None] = []
        for order_id in self._to_cancel:
            ops.append(("order.cancel", {"symbol": symbol, "orderId": order_id}))
            keys.append(None)
        self._to_cancel.clear()
        for key, q in self.quotes.items():
            if key not in targets:
                ops.append(("order.cancel", {"symbol": symbol, "orderId": q.order_id}))
                keys.append(key)
            elif abs(targets[key] - q.price) >= threshold:
                ops.append(("order.amend", {"symbol": symbol, "orderId": q.order_id,
                                            "price": targets[key]}))
                keys.append(key)
        for key, price in targets.items():
            if key not in self.quotes:
                ops.append(("order.place", place_args(
                    symbol, key[0], self.qty, price,
                    tif="POST_ONLY" if p.post_only else "GTC")))
                keys.append(key)
        for start in range(0, len(ops), 20):  # order.batch takes 20 ops
            chunk, chunk_keys = ops[start:start + 20], keys[start:start + 20]
            self.stats.orders += len(chunk)
            try:
                results = await client.batch(chunk)
            except RequestError as exc:  # the whole batch refused (rate limit, ...)
                self.note_reject(exc)
                return
            for (op, args), quote, result in zip(chunk, chunk_keys, results, strict=True):
                self._settle(op, args, quote, result)

    def _settle(self, op: str, args: dict[str, Any], key: tuple[str, int] | None,
                result: Any) -> None:
        if key is None:  # a stray order's cancel: nothing to track, whatever the outcome
            return
        if isinstance(result, RequestError):
            if result.code != R.POST_ONLY_WOULD_CROSS:  # crossing waits a step: not news
                self.note_reject(result)
            q = self.quotes.pop(key, None) if op != "order.place" else None
            if q is not None and op == "order.amend" and result.code != R.UNKNOWN_ORDER:
                self._to_cancel.append(q.order_id)  # alive but could not move: pull it
            return
        if op == "order.place":
            if result["status"] in ("NEW", "PARTIALLY_FILLED"):
                self.quotes[key] = _Quote(result["orderId"], args["price"], args["qty"])
        elif op == "order.amend":
            q = self.quotes.get(key)
            if q is not None:
                q.price = result["price"]
        else:
            self.quotes.pop(key, None)

    async def finish(self) -> None:
        client = self.client
        assert client is not None
        if self.params.cancel_on_exit:
            try:
                n = await client.cancel_all(self.params.symbol)
            except (RequestError, ConnectionError):
                return
            self.quotes.clear()
            self.say(f"{self.name}: canceled {n} quotes")
