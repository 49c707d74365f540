"""The shipped bots through the Binance facade (``gaemi bot NAME --api binance``): the stock
ccxt package against a live server, the same bots' code as over the native protocol. A market
maker keeps its quotes and follows the mark with Binance's modify; an ant buys the dip and is
liquidated (seen by Binance's ``autoclose-`` client id); the command line runs them.

Waits are for conditions with generous timeouts (hang guards), never for a speed."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from gaemi.clients.cli.bots import _run
from gaemi.clients.live.binance import BinanceClient
from gaemi.clients.live.bots import Ant, AntParams, MarketMaker, MarketMakerParams
from gaemi.clients.live.client import Client, connect
from gaemi.gateway.server import Server
from tests.clients.aio import INDEX, SYMBOL, run, until
from tests.clients.test_bots_live import FAST, logged_on, mm_params, running


@asynccontextmanager
async def facade() -> AsyncIterator[tuple[Server, Client]]:
    """A server with the Binance facade, funded dev accounts and SKHYNIX-PERP's index set."""
    async with (
        Server(port=0, binance_port=0, dev_accounts=3, tick_interval=0.2) as srv,
        connect(srv.url) as admin,
    ):
        await admin.logon("admin", srv.keys["admin"].secret)
        await admin.set_index(SYMBOL, INDEX)
        yield srv, admin


async def binance(srv: Server, n: int) -> BinanceClient:
    return await BinanceClient.connect(srv.binance_url, f"dev-{n}", srv.keys[f"dev-{n}"].secret)


def test_a_market_maker_over_ccxt_keeps_its_quotes_and_follows_the_mark() -> None:
    async def scenario() -> None:
        async with facade() as (srv, admin):
            mm = MarketMaker(MarketMakerParams(symbol=SYMBOL, interval=0.2, levels=2))
            taker = await logged_on(srv, 2)
            client = await binance(srv, 1)
            assert client.account_id == 1
            async with running(mm, client):
                await until(lambda: len(srv.venue.open_orders(1)) == 4, "two quotes a side")
                quoted = sorted(srv.venue.open_orders(1), key=lambda o: o["price"])

                # Act: take the best ask, then move the index up 0.5%
                took = await taker.market(SYMBOL, "BUY", quoted[2]["qty"])
                await until(lambda: mm.stats.fills >= 1, "the market maker's fill")
                await admin.set_index(SYMBOL, INDEX + 600)

                def moved_in_place() -> bool:
                    """Four quotes around the bot's mark, one of the first four at a new
                    price under its old id."""
                    now = sorted(srv.venue.open_orders(1), key=lambda o: o["price"])
                    prices = {o["order_id"]: o["price"] for o in now}
                    return len(now) == 4 and mm.mark is not None and \
                        now[1]["price"] < mm.mark < now[2]["price"] and any(
                            prices.get(o["order_id"], o["price"]) != o["price"]
                            for o in quoted)
                await until(moved_in_place, "quotes modified in place around the mark")
            await until(lambda: srv.venue.open_orders(1) == [], "the quotes pulled on exit")
            await taker.close()

            # Assert: quotes around the mark, a maker fill; the quotes followed the mark the
            # bot saw, moved by Binance's modify (the order keeps its id)
            assert quoted[1]["price"] < INDEX < quoted[2]["price"]
            assert took["status"] == "FILLED"
            assert mm.stats.maker_fills >= 1 and mm.stats.taker_fills == 0
            assert mm.stats.position < 0 and mm.stats.rejects == 0
            srv.venue.check_invariants()

    run(scenario())


def test_an_ant_over_ccxt_buys_the_dip_and_is_liquidated() -> None:
    async def scenario() -> None:
        async with facade() as (srv, admin):
            mm = MarketMaker(mm_params(levels=3, level_usd=5_000))
            ant = Ant(AntParams(symbol=SYMBOL, interval=FAST, leverage=20, dip_bps=100,
                                stake_usd=300, max_buys=1, enter_at_start=False))
            async with running(mm, await logged_on(srv, 1)):
                await until(lambda: len(mm.quotes) == 6, "the market maker's quotes")
                async with running(ant, await binance(srv, 2)):
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

            # Assert: 20x isolated, one buy of about $300 x 20, liquidated; the loss bounded
            # by the stake and the fees; the venue agrees on the position
            account = srv.venue.account(2)
            assert SYMBOL not in account.positions
            notional = bought * INDEX * 985 // 1000 * 10
            assert 5_000_000_000 < notional < 7_000_000_000  # µ$: about $6,000
            assert ant.buys == 1 and ant.stats.taker_fills >= 1
            assert -400_000_000 < ant.stats.pnl < 0  # µ$
            srv.venue.check_invariants()

    run(scenario())


def test_the_bot_command_runs_a_bot_over_the_binance_api(
        capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario() -> int:
        async with facade() as (srv, _):
            args = argparse.Namespace(api="binance", url=srv.binance_url, encoding="json",
                                      duration=1.0, report_every=0.5)
            return await _run(args, MarketMaker, mm_params(), "dev-1",
                              srv.keys["dev-1"].secret)

    code = run(scenario())
    out = capsys.readouterr().out
    assert code == 0
    assert "as account 1 (binance (ccxt))" in out
    assert "market-maker: quoting 3 levels a side" in out and "market-maker: canceled" in out
