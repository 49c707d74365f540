"""The bots: their decision rules without a server, then each bot running against a real
server on a loopback port, with a market maker providing liquidity, until it has traded.

Waits are for conditions with generous timeouts (hang guards); the bots' own step interval is
shortened so that the tests are quick, never asserted on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gaemi.clients.cli.bots import _run, add_parser, parse_params, read_key, server_url
from gaemi.clients.live.book import follow_book
from gaemi.clients.live.bots import (
    BOTS,
    Ant,
    AntParams,
    MarketMaker,
    MarketMakerParams,
    Momentum,
    MomentumParams,
)
from gaemi.clients.live.client import Client, ConnectionLost
from gaemi.gateway.server import Server
from tests.clients.aio import GUARD, INDEX, SYMBOL, exchange, run, until

FAST = 0.02  # the bots' step interval in these tests




async def logged_on(srv: Server, n: int, encoding: str = "json") -> Client:
    client = await Client.connect(srv.url, encoding)
    await client.logon(f"dev-{n}", srv.keys[f"dev-{n}"].secret)
    return client


@asynccontextmanager
async def running(bot: Any, client: Client):
    """Run ``bot`` in a task; stop it (and check it ended cleanly) on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(bot.run(client, stop_event=stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, GUARD)
        await client.close()


def mm_params(**changes: Any) -> MarketMakerParams:
    return MarketMakerParams(symbol=SYMBOL, interval=FAST, **changes)


# -- decision rules, no server --------------------------------------------------------------------


def _offline(bot: Any, mark: int, position: int = 0) -> Any:
    bot.mark, bot.position, bot.multiplier = mark, position, 10
    return bot


def test_market_maker_quotes_symmetric_levels_when_flat() -> None:
    # Arrange
    mm = _offline(MarketMaker(mm_params(levels=2, half_spread_bps=10, level_step_bps=5)),
                  mark=100_000)

    # Act
    targets = mm.targets()

    # Assert: 0.10% and 0.15% from the mark; bids round down, asks up
    assert targets == {("BUY", 0): 99_900, ("SELL", 0): 100_100,
                       ("BUY", 1): 99_850, ("SELL", 1): 100_150}
    assert mm.qty == 2_000 * 1_000_000 // (100_000 * 10)


def test_market_maker_skews_against_its_inventory_and_stops_at_the_limit() -> None:
    # Arrange: $50,000 at the mark is 50,000 lots; long half of it
    params = mm_params(levels=1, half_spread_bps=10, skew_bps=20, max_position_usd=50_000)
    long_half = _offline(MarketMaker(params), mark=100_000, position=25_000)
    short_full = _offline(MarketMaker(params), mark=100_000, position=-50_000)

    # Act
    skewed = long_half.targets()
    at_limit = short_full.targets()

    # Assert: long, both quotes move down 10 bp (half of 20); short at the limit: no ask
    assert skewed == {("BUY", 0): 99_800, ("SELL", 0): 100_000}
    assert set(at_limit) == {("BUY", 0)} and at_limit[("BUY", 0)] > 99_900


def test_ant_buys_only_after_a_dip_from_its_high() -> None:
    # Arrange: the dip rule alone (no entry buy)
    ant = Ant(AntParams(symbol=SYMBOL, dip_bps=100, max_buys=1, enter_at_start=False))

    # Act
    for mark in (100_000, 103_000, 101_000):
        ant.on_mark({"mark": mark})
    trigger = ant.trigger()
    ant.buys = 1
    exhausted = ant.trigger()

    # Assert: 1% below the high of 103,000
    assert trigger == 101_970
    assert exhausted is None


def test_ant_enters_at_any_mark_then_waits_for_a_dip() -> None:
    # Arrange: the default ant buys once on arrival
    ant = Ant(AntParams(symbol=SYMBOL, dip_bps=100))

    # Act
    ant.on_mark({"mark": 100_000})
    entry = ant.trigger()
    ant.buys = 1
    after = ant.trigger()

    # Assert
    assert entry == 100_000  # at the mark it knows: a buy at once
    assert after == 99_000

def test_momentum_signal_is_the_move_over_its_window() -> None:
    async def scenario() -> tuple[int, int, int]:
        bot = Momentum(MomentumParams(symbol=SYMBOL, lookback_s=60))
        bot._sample(100_000)
        bot._sample(100_150)
        up = bot.signal()
        bot._sample(99_700)
        down = bot.signal()
        bot.prices.clear()
        return up, down, bot.signal()

    # Act
    up, down, empty = asyncio.run(scenario())

    # Assert
    assert (up, down, empty) == (15, -30, 0)


def test_the_registry_names_each_bot_and_its_parameters() -> None:
    # Assert: every parameter is documented in docs/bots.md
    doc = (Path(__file__).resolve().parents[2] / "docs" / "bots.md").read_text()
    assert set(BOTS) == {"market-maker", "ant", "momentum"}
    for name, cls in BOTS.items():
        assert cls.name == name
        params = cls.Params()
        assert params.symbol == SYMBOL
        for field in vars(params):
            assert f"`{field}`" in doc, f"{name}.{field} is not in docs/bots.md"


# -- the command line ---------------------------------------------------------------------------


def test_bot_command_line_parses_credentials_and_parameters(tmp_path: Path) -> None:
    # Arrange
    parser = argparse.ArgumentParser(prog="gaemi")
    add_parser(parser.add_subparsers(dest="command"))
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [
        {"apiKey": "ops", "secret": "x", "accountId": 0, "admin": True},
        {"apiKey": "dev-1", "secret": "s1", "accountId": 1, "admin": False},
        {"apiKey": "dev-2", "secret": "s2", "accountId": 2, "admin": False}]}))

    # Act
    args = parser.parse_args(["bot", "ant", "--keys-file", str(keys), "--account", "2",
                              "--duration", "3", "--param", "leverage=15",
                              "--param", "isolated=false"])
    params = parse_params(BOTS[args.name].Params, args.param, symbol=args.symbol)

    # Assert
    assert args.func.__name__ == "run" and args.encoding == "json"
    assert server_url(args) == "ws://127.0.0.1:8765" and args.duration == 3.0
    assert server_url(parser.parse_args(["bot", "ant", "--api", "binance"])) == \
        "http://127.0.0.1:8766"
    assert read_key(args.keys_file, args.account) == ("dev-2", "s2")
    assert params == AntParams(symbol="SKHYNIX-PERP", leverage=15, isolated=False)
    with pytest.raises(SystemExit):
        read_key(keys, None)  # two trading keys: which one?
    with pytest.raises(SystemExit):
        parse_params(AntParams, ["leverage=high"])
    with pytest.raises(SystemExit):
        parse_params(AntParams, ["nonsense=1"])


def test_bot_command_runs_a_bot_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> int:
        async with exchange() as (srv, _):
            args = argparse.Namespace(url=srv.url, encoding="msgpack", duration=0.3,
                                      report_every=0.1)
            params = mm_params()
            return await _run(args, MarketMaker, params, "dev-1", srv.keys["dev-1"].secret)

    # Act
    code = run(scenario())

    # Assert
    out = capsys.readouterr().out
    assert code == 0
    assert "logged on to ws://127.0.0.1:" in out and "as account 1 (gaemi.msgpack)" in out
    assert "market-maker: quoting 3 levels a side" in out and "market-maker: canceled" in out
    assert "done: market-maker SKHYNIX-PERP: mark 120000" in out


# -- bots against a server --------------------------------------------------------------------


def test_market_maker_keeps_its_quotes_in_the_book_and_trades() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            mm = MarketMaker(mm_params(levels=3))
            watcher = await Client.connect(srv.url)
            feed = await follow_book(watcher, SYMBOL)
            taker = await logged_on(srv, 2)
            async with running(mm, await logged_on(srv, 1, "msgpack")):
                await until(lambda: len(feed.book.depth()[0]) == 3 == len(feed.book.depth()[1]),
                            "three quotes a side")
                quoted = feed.book.depth()

                # Act: take the whole touch ask, then move the index
                took = await taker.market(SYMBOL, "BUY", quoted[1][0][1])
                await until(lambda: mm.stats.fills >= 1 and len(mm.quotes) == 6,
                            "the fill and the replacement quote")
                await admin.set_index(SYMBOL, INDEX + 600)
                await until(lambda: feed.book.best_bid() is not None
                            and feed.book.best_bid()[0] > INDEX, "quotes following the mark")
            await until(lambda: len(feed.book) == 0, "the quotes pulled on exit")
            await watcher.close()
            await taker.close()

            # Assert
            (bid, _), (ask, _) = quoted[0][0], quoted[1][0]
            assert bid < INDEX < ask and ask - bid == 2 * INDEX * 10 // 10_000
            assert took["status"] == "FILLED"
            assert mm.stats.maker_fills >= 1 and mm.stats.taker_fills == 0
            assert mm.stats.position < 0  # it sold to the taker
            assert mm.stats.rejects == 0

    run(scenario())


def test_ant_buys_the_dip_with_leverage_and_gets_liquidated() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            mm = MarketMaker(mm_params(levels=3, level_usd=5_000))
            ant = Ant(AntParams(symbol=SYMBOL, interval=FAST, leverage=20, dip_bps=100,
                                stake_usd=300, max_buys=1, enter_at_start=False))
            ant_client = await logged_on(srv, 2, "msgpack")
            positions: list[dict] = []
            ant_client.add_handler("positions", lambda p: positions.append(p["data"]))
            async with running(mm, await logged_on(srv, 1)):
                await until(lambda: len(mm.quotes) == 6, "the market maker's quotes")
                async with running(ant, ant_client):
                    await until(lambda: ant.mark is not None and ant.leverage == 20,
                                "the ant to set up")
                    # Act: a 1.5% dip, then the fall goes on
                    await admin.set_index(SYMBOL, INDEX * 985 // 1000)
                    await until(lambda: ant.stats.fills >= 1 and ant.position > 0,
                                "the ant's buy")
                    bought = ant.position
                    await admin.set_index(SYMBOL, INDEX * 950 // 1000)
                    await until(lambda: ant.stats.liquidations >= 1, "the liquidation")
                    await until(lambda: ant.position == 0, "the position closed")

            # Assert: 20x isolated, one buy of about $300 x 20, liquidated; isolated margin
            # bounds the loss by the stake and the fees (how much of it depends on where the
            # market maker's bids were when the liquidation order came)
            assert positions[0]["marginMode"] == "isolated" and positions[0]["leverage"] == 20
            notional = bought * INDEX * 985 // 1000 * 10
            assert 5_000_000_000 < notional < 7_000_000_000  # µ$: about $6,000
            assert ant.buys == 1 and ant.stats.taker_fills >= 1
            assert -400_000_000 < ant.stats.pnl < 0  # µ$

    run(scenario())


def test_momentum_follows_a_rise_with_market_buys_within_its_limit() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            mm = MarketMaker(mm_params(levels=3, level_usd=5_000))
            mo = Momentum(MomentumParams(symbol=SYMBOL, interval=FAST, lookback_s=60,
                                         threshold_bps=20, order_usd=2_000,
                                         max_position_usd=3_000, cooldown_s=0))
            async with running(mm, await logged_on(srv, 1)):
                await until(lambda: len(mm.quotes) == 6, "the market maker's quotes")
                async with running(mo, await logged_on(srv, 3, "msgpack")):
                    await until(lambda: mo.mark is not None and mo.prices, "momentum's start")
                    # Act: the index rises 0.5%, then 0.5% more
                    await admin.set_index(SYMBOL, INDEX * 1005 // 1000)
                    await until(lambda: mo.position > 0, "the first buy")
                    first = mo.position
                    await admin.set_index(SYMBOL, INDEX * 1010 // 1000)
                    await until(lambda: mo.position > first, "the second buy")

            # Assert: it bought, as a taker, and the second order was cut to the limit ($3,000
            # at a mark above INDEX is fewer lots than two orders of $2,000)
            assert mo.stats.taker_fills >= 2 and mo.stats.sold == 0
            assert 1_600 < first < 1_700  # $2,000 at a mark near 120,600 ticks
            assert first < mo.position <= mo.lots_for(3_000, INDEX) < 2 * first
            assert mm.stats.maker_fills >= 2

    run(scenario())


def test_a_bot_whose_connection_is_lost_raises_instead_of_returning() -> None:
    async def scenario() -> None:
        srv = Server(port=0, dev_accounts=1, tick_interval=0.2)
        await srv.start()
        bot = Momentum(MomentumParams(symbol=SYMBOL, interval=FAST))
        task = asyncio.create_task(bot.run(await logged_on(srv, 1)))
        await until(lambda: bool(bot._handlers), "the bot to subscribe")

        # Act
        await srv.stop()
        with pytest.raises(ConnectionLost) as lost:
            await asyncio.wait_for(task, GUARD)

        # Assert
        assert lost.value.code == 1001

    run(scenario())


def test_the_readme_recipe_trades_with_its_default_bots() -> None:
    """README: ``gaemi serve``, then a market maker, an ant and a momentum bot with their
    default parameters, the index held still. They used to make no trade at all: now the ant
    buys on arrival from the market maker's quotes."""
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            mm = MarketMaker(MarketMakerParams(symbol=SYMBOL))
            ant = Ant(AntParams(symbol=SYMBOL))
            mo = Momentum(MomentumParams(symbol=SYMBOL))
            async with running(mm, await logged_on(srv, 1)), \
                    running(ant, await logged_on(srv, 2)), \
                    running(mo, await logged_on(srv, 3, "msgpack")):
                # Act: nothing but the bots themselves
                await until(lambda: ant.stats.fills >= 1 and mm.stats.maker_fills >= 1,
                            "the first trade")

            # Assert: the ant bought, as a taker, and the market maker sold, as a maker (the
            # momentum bot may have traded too after that: the amounts are not compared)
            assert ant.buys >= 1 and ant.stats.bought > 0 and ant.stats.taker_fills >= 1
            assert mm.stats.maker_fills >= 1 and mm.stats.sold > 0

    run(scenario())
