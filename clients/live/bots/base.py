"""What every bot shares: the market it trades, its own view of its position and PnL, and the
loop that runs it until a stop event or a duration (docs/bots.md).

A bot is given a logged-on ``Client``. ``Bot.run`` looks up the instrument, subscribes
``mark.<symbol>`` and the private ``orders``, ``fills`` and ``positions`` channels, and calls
the bot's ``step()`` whenever something it listens to happens (and at least every
``interval`` seconds) until it is stopped. Handlers only record; all requests are made from
``step()``, one at a time, so a bot never races itself.

Money is integer micro-dollars (µ$) and prices integer ticks, as on the wire; parameters a
person sets are whole basis points and whole US dollars.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from gaemi.clients.live.client import Client, Push, RequestError

__all__ = ["BPS", "UNIT", "Bot", "BotParams", "BotStats"]

log = logging.getLogger(__name__)

UNIT = 1_000_000  # µ$ per US dollar
BPS = 10_000  # basis points in one


@dataclass
class BotParams:
    """Parameters every bot has."""

    symbol: str = "SKHYNIX-PERP"  # the market traded
    interval: float = 0.5  # seconds: the longest the bot waits between two steps


@dataclass
class BotStats:
    """A bot's own record of what it did (from its fills; PnL at the last mark)."""

    orders: int = 0  # requests that placed, amended or canceled an order
    rejects: int = 0  # of those, refused by the venue or the gateway
    fills: int = 0
    maker_fills: int = 0
    taker_fills: int = 0
    bought: int = 0  # lots
    sold: int = 0  # lots
    fees: int = 0  # µ$ paid (a rebate counts negative)
    liquidations: int = 0  # liquidation orders the venue placed for this account
    position: int = 0  # signed lots, as the venue last reported
    entry_price: int = 0  # ticks
    mark: int | None = None
    pnl: int = 0  # µ$ since the bot started (balance change + unrealized PnL change)
    reject_reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Bot:
    """Base of the bots: subclasses set ``name`` and ``Params`` and write ``step()``."""

    name: ClassVar[str] = "bot"
    Params: ClassVar[type[BotParams]] = BotParams
    extra_channels: ClassVar[tuple[str, ...]] = ()  # public kinds besides mark, e.g. "trades"

    def __init__(self, params: BotParams | None = None, *,
                 log: Callable[[str], None] | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.stats = BotStats()
        self.say = log or (lambda text: None)
        self.client: Client | None = None
        self.instrument: dict[str, Any] = {}
        self.multiplier = 1
        self.mark: int | None = None
        self.index: int | None = None
        self.position = 0
        self.filled_by_order: dict[int, int] = {}  # orderId -> lots filled so far
        self.canceled: set[int] = set()  # orderIds the venue reports canceled
        # PnL since the start: the balance's change (realized PnL, fees, funding, whatever
        # a liquidation took) plus the change of the unrealized PnL at the mark
        self.balance: int | None = None
        self._balance0 = 0
        self._upnl0 = 0
        self._upnl_ref = (0, 0)  # (unrealized PnL the venue last reported, the mark then)
        self._wake = asyncio.Event()
        self._handlers: list[tuple[str, Callable[[Push], None]]] = []
        self.account_id: int | None = None

    # -- the loop --------------------------------------------------------------------------------

    async def run(self, client: Client, *, stop_event: asyncio.Event | None = None,
                  duration: float | None = None) -> BotStats:
        """Trade until ``stop_event`` is set or ``duration`` seconds have passed (or forever);
        return the bot's statistics. The client must be logged on. A lost connection raises
        ``ConnectionLost``."""
        if client.account_id is None:
            raise RuntimeError(f"{self.name}: log the client on first")
        stop = stop_event or asyncio.Event()
        timer = asyncio.get_running_loop().call_later(duration, stop.set) \
            if duration is not None else None
        self.client = client
        self.account_id = client.account_id
        try:
            await self._attach(client)
            await self.start()
            while not stop.is_set() and not client.closed:
                self._wake.clear()  # what happens during the step wakes the next one
                if self.mark is not None:
                    await self.step()
                await _wait_any(stop, self._wake, self.params.interval)
            if not stop.is_set():
                client.raise_if_closed()  # lost, not stopped: say why
        finally:
            if timer is not None:
                timer.cancel()
            try:
                if not client.closed:
                    await self.finish()
            finally:
                self._detach(client)
        return self.snapshot()

    async def start(self) -> None:
        """Called once after subscribing, before the first step."""

    async def step(self) -> None:  # pragma: no cover (every bot overrides it)
        """Look at the market and act. Called when the mark, a fill or a position changes
        (subclasses may wake on more), and every ``interval`` seconds; only once a mark is
        known."""
        raise NotImplementedError

    async def finish(self) -> None:
        """Called once when stopping (while the connection is still open)."""

    def wake(self) -> None:
        """Run ``step()`` soon."""
        self._wake.set()

    # -- subscriptions and state -----------------------------------------------------------------

    async def _attach(self, client: Client) -> None:
        symbol = self.params.symbol
        self.instrument = await client.instrument(symbol)
        self.multiplier = int(self.instrument["multiplier"])
        self.mark = self.instrument.get("mark")
        self.index = self.instrument.get("index")
        self.balance = self._balance0 = (await client.balance())["balance"]
        pos = await client.position(symbol)
        if pos is not None:
            self._on_position_data(pos)
        self._upnl0 = self._upnl_ref[0]
        public = [f"{kind}.{symbol}" for kind in ("mark", *self.extra_channels)]
        routes: list[tuple[str, Callable[[Push], None]]] = [
            (public[0], self._on_mark), ("fills", self._on_fill),
            ("positions", self._on_position), ("orders", self._on_order),
            ("account", self._on_account)]
        routes += [(ch, self._on_public) for ch in public[1:]]
        for ch, handler in routes:
            client.add_handler(ch, handler)
            self._handlers.append((ch, handler))
        await client.subscribe([*public, "orders", "fills", "positions", "account"])

    def _detach(self, client: Client) -> None:
        for ch, handler in self._handlers:
            client.remove_handler(ch, handler)
        self._handlers.clear()

    def _on_mark(self, push: Push) -> None:
        data = push["data"]
        self.mark = data["mark"]
        self.index = data.get("index")
        self.stats.mark = self.mark
        self.on_mark(data)
        self.wake()

    def on_mark(self, data: dict[str, Any]) -> None:
        """A new mark (``mark.<symbol>`` data); ``self.mark`` is already updated."""

    def _on_public(self, push: Push) -> None:
        self.on_public(push)

    def on_public(self, push: Push) -> None:
        """A push on one of ``extra_channels``."""

    def _on_fill(self, push: Push) -> None:
        f = push["data"]
        if f.get("symbol") != self.params.symbol:
            return
        s = self.stats
        qty = f["qty"]
        s.fills += 1
        s.fees += f["fee"]
        if f["side"] == "BUY":
            s.bought += qty
        else:
            s.sold += qty
        if f.get("role") == "maker":
            s.maker_fills += 1
        else:
            s.taker_fills += 1
        oid = f["orderId"]
        self.filled_by_order[oid] = self.filled_by_order.get(oid, 0) + qty
        self.on_fill(f)
        self.wake()

    def on_fill(self, fill: dict[str, Any]) -> None:
        """One of this bot's fills in its market (``fills`` data)."""

    def _on_position(self, push: Push) -> None:
        if push["data"].get("symbol") == self.params.symbol:
            self._on_position_data(push["data"])
            self.wake()

    def _on_position_data(self, pos: dict[str, Any]) -> None:
        self.position = pos.get("size") or 0
        self._upnl_ref = (pos.get("unrealizedPnl") or 0, self.mark or 0)
        self.stats.position = self.position
        self.stats.entry_price = pos.get("entryPrice") or 0

    def _on_account(self, push: Push) -> None:
        data = push["data"]
        if data.get("type") == "balance":
            self.balance = data["balance"]

    def _on_order(self, push: Push) -> None:
        o = push["data"]
        if o.get("symbol") != self.params.symbol:
            return
        if o.get("type") == "accepted" and o.get("liquidationId") is not None:
            self.stats.liquidations += 1
            self.say(f"{self.name}: LIQUIDATED (liquidation {o['liquidationId']}: "
                     f"{o['side']} {o['qty']} lots)")
        elif o.get("type") == "canceled":
            self.canceled.add(o["orderId"])
        self.on_order(o)

    def on_order(self, order: dict[str, Any]) -> None:
        """An ``orders`` push of this bot's market."""

    # -- helpers for subclasses ------------------------------------------------------------------

    def pnl(self) -> int:
        """µ$ since the bot started: the balance's change plus the unrealized PnL's change at
        the current mark (the account's, so a bot should have its account to itself)."""
        upnl, at_mark = self._upnl_ref
        if self.position and self.mark is not None and at_mark:
            upnl += self.position * (self.mark - at_mark) * self.multiplier
        return (self.balance or 0) - self._balance0 + upnl - self._upnl0

    def lots_for(self, usd: int, price: int) -> int:
        """The lots that ``usd`` dollars buy at ``price`` ticks (at least 1)."""
        return max(1, usd * UNIT // (price * self.multiplier))

    def usd(self, micro: int) -> str:
        return f"${micro / UNIT:,.2f}"

    async def order(self, op: str, call: Any) -> Any:
        """Await an order request, counting it; a ``RequestError`` is counted and returned."""
        self.stats.orders += 1
        try:
            return await call
        except RequestError as exc:
            self.note_reject(exc)
            return exc

    def note_reject(self, exc: RequestError) -> None:
        self.stats.rejects += 1
        name = getattr(exc.code, "name", str(exc.code))
        self.stats.reject_reasons[name] = self.stats.reject_reasons.get(name, 0) + 1

    def snapshot(self) -> BotStats:
        """The statistics now (position and PnL at the current mark)."""
        self.stats.position = self.position
        self.stats.mark = self.mark
        self.stats.pnl = self.pnl()
        return self.stats

    def status(self) -> str:
        s = self.snapshot()
        mark = "-" if s.mark is None else str(s.mark)
        return (f"{self.name} {self.params.symbol}: mark {mark}  position {s.position} lots "
                f"(entry {s.entry_price})  fills {s.fills} (maker {s.maker_fills}, taker "
                f"{s.taker_fills})  bought {s.bought} sold {s.sold}  fees {self.usd(s.fees)}  "
                f"PnL {self.usd(s.pnl)}  orders {s.orders} rejects {s.rejects}"
                + (f"  liquidations {s.liquidations}" if s.liquidations else ""))


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    """Wait until ``stop`` or ``wake`` is set, or ``timeout`` seconds."""
    if stop.is_set() or wake.is_set():
        return
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
