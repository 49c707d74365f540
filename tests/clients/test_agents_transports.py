"""One agent, two transports: the simulator's market maker (clients/sim/scenario/agents.py)
runs unchanged on an in-process session (the sans-I/O exchange called with message objects)
and on a websocket session to a real server, through the same flow, and sends the same orders
and gets the same answers.

The flow: the index moves, the maker requotes when it is due, and a taker on another account
sends market orders at it, so its inventory (read back with ``account.positions``) leans its
next quotes. Both venues start alike: the four preset markets, accounts 1-4 funded with
$1,000,000 each (what ``Server(dev_accounts=4)`` journals), the NVDA index at 10,000 ticks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gaemi.clients.live.session import Reply, Session, WsSession
from gaemi.clients.sim.cascade.record import Cohort
from gaemi.clients.sim.inprocess import InProcess
from gaemi.clients.sim.scenario.agents import MarketMaker, View, place
from gaemi.clients.sim.scenario.params import MarketMakerParams
from gaemi.gateway.exchange import Exchange
from gaemi.gateway.server import DEV_DEPOSIT
from gaemi.gateway.sessions import Limits
from gaemi.risk import Deposit, SetIndexPrice, Venue
from tests.gateway.live import SYM, live_server

MAKER, TAKER = 1, 2
T0 = 1_767_225_600_000_000_000
# (seconds, underlying in ticks, the taker's market order: signed lots, or 0)
FLOW = [(0, 10_000, 0), (5, 10_010, 300), (20, 10_030, 0), (25, 10_030, -800),
        (40, 9_990, 0), (41, 9_950, 500), (60, 9_950, 0), (61, 9_960, -200), (80, 10_020, 0)]


class _Recorder(Session):
    """The agent's session, writing down every message, the answer it got, and its fills
    (which, over a socket, may come with a later request's reply: they are compared as a
    whole)."""

    def __init__(self, inner: Session, log: list[tuple[Any, ...]],
                 fills: list[tuple[int, int, str]]) -> None:
        self.inner, self.log, self.fills, self.account_id = inner, log, fills, inner.account_id

    def send(self, message: dict[str, Any]) -> Reply:
        reply = self.inner.send(message)
        self.log.append((message, reply.ok, reply.code, _timeless(reply.result)))
        self.fills.extend((f["price"], f["qty"], f["role"]) for f in reply.fills())
        return reply


def _timeless(value: Any) -> Any:
    """A result without its ``ts`` fields: each venue keeps its own clock."""
    if isinstance(value, dict):
        return {k: _timeless(v) for k, v in value.items() if k != "ts"}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


class _Api:
    """What the agent needs besides its session: the market, the money, the clock."""

    def __init__(self, venue_spec: Any, session: Session,
                 deposit: Callable[[int, int], None]) -> None:
        self.symbol = SYM
        self.spec = venue_spec
        self.mult = venue_spec.multiplier
        self.view = View(T0, 10_000)
        self._session = session
        self._deposit = deposit

    def session(self, account_id: int, channels: tuple[str, ...] = ()) -> Session:
        assert account_id == self._session.account_id
        return self._session

    def deposit(self, account_id: int, amount: int) -> None:
        self._deposit(account_id, amount)

    def at(self, ts: int, action: Any, arg: Any) -> None:  # the maker schedules nothing
        raise AssertionError("not used")

    def session_after(self, ts: int, seconds: float) -> int | None:
        return None

    def register(self, account_id: int, cohort: Cohort, owner: Any) -> None:
        pass


def _run(maker_session: Session, taker: Session, set_index: Callable[[int], None],
         deposit: Callable[[int, int], None], spec: Any,
         other_pushes: Callable[[], list[dict[str, Any]]]) -> tuple[list[Any], list[Any]]:
    log: list[Any] = []
    fills: list[tuple[int, int, str]] = []
    api = _Api(spec, _Recorder(maker_session, log, fills), deposit)
    params = MarketMakerParams(capital_usd=500_000, levels=3, level_usd=10_000,
                               inventory_limit_usd=50_000)
    maker = MarketMaker(params, MAKER, 0, api)  # type: ignore[arg-type]
    maker.start()
    for seconds, ref, taker_lots in FLOW:
        api.view.t, api.view.ref = T0 + seconds * 10**9, ref
        set_index(ref)
        if maker.due(api.view):
            if maker.quoted:
                maker.pull()
            maker.quote(api.view)
        if taker_lots:
            reply = taker.send(place(SYM, 1 if taker_lots > 0 else -1, abs(taker_lots)))
            log.append(("taker", reply.ok, reply.result["filledQty"]))
    log.append(("position", maker_session.position(SYM)))
    fills.extend((p["data"]["price"], p["data"]["qty"], p["data"]["role"])
                 for p in other_pushes() if p.get("ch") == "fills")
    return log, sorted(fills)


def test_the_market_maker_sends_the_same_orders_in_process_and_over_a_websocket() -> None:
    # Arrange: the in-process venue, as the live server starts its own
    venue = Venue(start_ts=T0)
    exchange = Exchange(venue, {}, limits=Limits(requests_per_second=10**6,
                                                 orders_per_second=10**6))
    for account in (1, 2, 3, 4):
        exchange.apply(Deposit(account, DEV_DEPOSIT))
    exchange.apply(SetIndexPrice(SYM, 10_000))
    wire = InProcess(exchange, lambda: venue.time)

    # Act: in process
    maker_in = wire.session(MAKER, ("fills", "account"))
    in_process, fills_in = _run(
        maker_in, wire.session(TAKER, ("fills", "account")),
        lambda p: exchange.apply(SetIndexPrice(SYM, p)),
        lambda a, amount: exchange.apply(Deposit(a, amount)), venue.spec(SYM),
        lambda: [m for s, m in wire.take() if s is maker_in])

    # Act: the same agent over websockets, to a real server
    with live_server() as live:
        keys = live.server.keys
        admin = WsSession(live.url, "admin", keys["admin"].secret, 0, channels=())
        maker = WsSession(live.url, "dev-1", keys["dev-1"].secret, MAKER, encoding="gaemi.msgpack")
        taker = WsSession(live.url, "dev-2", keys["dev-2"].secret, TAKER)
        over_socket, fills_ws = _run(
            maker, taker, lambda p: admin.request("admin.setIndex", {"symbol": SYM, "price": p}),
            lambda a, amount: admin.request("admin.deposit", {"accountId": a, "amount": amount}),
            live.on_loop(lambda: live.server.venue.spec(SYM)), maker.drain)
        for session in (admin, maker, taker):
            session.close()

    # Assert: the same orders, the same answers, trades that moved the maker's inventory
    assert over_socket == in_process
    assert fills_ws == fills_in and {role for _, _, role in fills_in} == {"maker"}
    sent = [entry[0] for entry in in_process if isinstance(entry[0], dict)]
    assert sum(m["op"] == "order.place" for m in sent) >= 12
    assert sum(m["op"] == "order.cancelAll" for m in sent) >= 3
    assert all(entry[1] for entry in in_process if entry[0] == "taker")
    assert in_process[-1][1] != 0
