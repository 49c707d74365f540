"""The index feed (clients/live/feed.py) against a live server: it sets real closes through the
authenticated admin op, and only an admin key may."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import pytest

from gaemi.clients.live.client import Client, RequestError
from gaemi.clients.live.feed import IndexFeed, day_steps, hold_prices
from gaemi.clients.marketdata.prices import load_series
from gaemi.gateway.wire.errors import GatewayCode as G
from tests.gateway.live import live_server

SYMBOLS = ["NVDA-PERP", "SKHYNIX-PERP"]


def test_hold_prices_are_the_last_real_closes_in_ticks() -> None:
    # Arrange: the last rows of the embedded files, converted by hand
    nvda = load_series("NVDA")[-1].close
    hynix = load_series("000660.KS")[-1].close

    # Act
    prices = hold_prices(SYMBOLS)

    # Assert: $ -> cents, half up; KRW / 1440 -> cents, half up
    assert prices["NVDA-PERP"] == int(nvda * 100 + Fraction(1, 2))
    assert prices["SKHYNIX-PERP"] == int(hynix * 100 / 1440 + Fraction(1, 2))


def test_a_day_path_runs_from_the_real_open_to_the_real_close() -> None:
    bar = load_series("NVDA")[-5]
    steps = day_steps("NVDA-PERP", bar, 10)
    assert len(steps) == 11
    assert steps[0].price == int(bar.open * 100 + Fraction(1, 2))
    assert steps[-1].price == int(bar.close * 100 + Fraction(1, 2))
    assert {s.date for s in steps} == {bar.date}


def test_the_feed_sets_and_replays_the_index_on_a_live_server() -> None:
    with live_server() as live:
        admin_secret = live.server.keys["admin"].secret
        trader_secret = live.server.keys["dev-1"].secret

        async def run() -> tuple[dict, dict, int]:
            async with await Client.connect(live.url, "msgpack") as client:
                await client.logon("admin", admin_secret)
                feed = IndexFeed(client, SYMBOLS)
                # NVDA already has an index (the live_server fixture's 10000): hold keeps it
                await feed.hold()
                held = {i["symbol"]: i["index"] for i in await client.instruments()}
                # a 6.5 h session at 23.4 million x real time lasts 1 ms: one interval, two prices
                sent = await feed.replay(speed=23_400_000, interval=0.001, days=2)
                after = {i["symbol"]: i["index"] for i in await client.instruments()}
            async with await Client.connect(live.url) as trader:
                await trader.logon("dev-1", trader_secret)
                with pytest.raises(RequestError) as refused:
                    await trader.request("admin.setIndex", {"symbol": "NVDA-PERP",
                                                            "price": 1})
            assert refused.value.code == G.FORBIDDEN
            return held, after, sent

        held, after, sent = asyncio.run(run())

    # Assert
    assert held["NVDA-PERP"] == 10_000
    assert held["SKHYNIX-PERP"] == hold_prices(["SKHYNIX-PERP"])["SKHYNIX-PERP"]
    last_two = load_series("NVDA")[-20:][:2]
    assert after["NVDA-PERP"] == day_steps("NVDA-PERP", last_two[-1], 1)[-1].price
    assert sent == 1 + 2 * 2 * 2  # the held SKHYNIX, then 2 days x (open, close) x 2 markets
