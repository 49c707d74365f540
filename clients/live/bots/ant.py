"""The ant (개미, a Korean retail trader): buys the dip with high leverage, never adds margin,
never sells, and is liquidated when the dip keeps dipping (docs/bots.md).

At start it sets its leverage (and, by default, isolated margin, so its stake is only the
margin each buy posts: the exposure of a small account, whatever the account's balance), and,
unless ``enter_at_start`` is off, buys once as soon as there is someone to buy from: an ant
arrives and buys. Then it follows the mark; when the mark is ``dip_bps`` below the highest
mark seen since its last buy it buys ``stake_usd × leverage`` of notional, with a market order
or a limit at the best ask. It stops buying after ``max_buys`` buys or when the venue refuses
a buy for margin. It has no stop-loss and no take-profit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gaemi.clients.live.bots.base import BPS, UNIT, Bot, BotParams
from gaemi.clients.live.client import RequestError
from gaemi.engine.codes import RejectReason as R

__all__ = ["Ant", "AntParams"]


@dataclass
class AntParams(BotParams):
    leverage: int = 20  # set on the market at start (capped by the market's maximum)
    isolated: bool = True  # isolated margin: the stake is all it can lose
    dip_bps: int = 100  # buy when the mark is 1% below the high since the last buy
    stake_usd: int = 500  # margin per buy, US dollars; notional = stake × leverage
    max_buys: int = 5  # buys in all, then it only holds
    order_type: str = "MARKET"  # "MARKET", or "LIMIT" at the mark plus limit_slippage_bps
    limit_slippage_bps: int = 20  # how far above the mark a LIMIT buy may pay
    enter_at_start: bool = True  # buy once at the start (then only dips)


class Ant(Bot):
    name: ClassVar[str] = "ant"
    Params: ClassVar[type[BotParams]] = AntParams
    params: AntParams

    def __init__(self, params: AntParams | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.high: int | None = None  # the highest mark since the last buy
        self.buys = 0
        self.out_of_margin = False
        self.leverage: int | None = None

    async def start(self) -> None:
        client = self.client
        assert client is not None
        p = self.params
        if p.isolated:
            try:
                await client.set_margin_mode(p.symbol, "isolated")
            except RequestError as exc:  # a position or open orders already: keep the mode
                self.say(f"{self.name}: margin mode unchanged ({exc})")
        leverage = min(p.leverage, int(self.instrument.get("maxLeverage") or p.leverage))
        try:
            await client.set_leverage(p.symbol, leverage)
            self.leverage = leverage
        except RequestError as exc:
            self.say(f"{self.name}: leverage unchanged ({exc})")
        self.say(f"{self.name}: {self.leverage or '?'}x "
                 f"{'isolated' if p.isolated else 'cross'} on {p.symbol}; buying every "
                 f"{p.dip_bps / 100:g}% dip with {self.usd(p.stake_usd * UNIT)} a time")

    def on_mark(self, data: dict[str, Any]) -> None:
        if self.high is None or data["mark"] > self.high:
            self.high = data["mark"]

    def trigger(self) -> int | None:
        """The mark at or below which the ant buys next (None: it does not buy any more)."""
        if self.high is None or self.buys >= self.params.max_buys or self.out_of_margin:
            return None
        if self.params.enter_at_start and self.buys == 0:
            return self.high  # the entry: at any mark (self.high is the mark it knows)
        return self.high * (BPS - self.params.dip_bps) // BPS

    async def step(self) -> None:
        client = self.client
        assert client is not None and self.mark is not None
        if self.high is None:
            self.high = self.mark
        trigger = self.trigger()
        if trigger is None or self.mark > trigger:
            return
        p = self.params
        leverage = self.leverage or p.leverage
        qty = self.lots_for(p.stake_usd * leverage, self.mark)
        if p.order_type == "MARKET":
            call = client.market(p.symbol, "BUY", qty)
        else:
            price = self.mark * (BPS + p.limit_slippage_bps) // BPS
            call = client.place(p.symbol, "BUY", qty, price, tif="IOC")
        result = await self.order("order.place", call)
        if isinstance(result, RequestError):
            if result.code in (R.INSUFFICIENT_MARGIN, R.LEVERAGE_ABOVE_TIER):
                self.out_of_margin = True
                self.say(f"{self.name}: out of margin, holding")
            return
        if not result["filledQty"]:
            return  # nobody to buy from: try again next step while the dip lasts
        what = "entry" if self.buys == 0 and p.enter_at_start else "dip"
        self.buys += 1
        self.high = self.mark  # the next dip is measured from here
        self.say(f"{self.name}: {what} at {self.mark}: bought {result['filledQty']} of {qty} "
                 f"lots ({result['status']})")
