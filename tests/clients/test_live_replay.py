"""An order flow replayed into a live server (clients/replay/live.py) builds the same book as
the same flow applied in process."""

from __future__ import annotations

import asyncio

import pytest

from gaemi.clients.replay.live import replay_live
from gaemi.clients.replay.orderflow import ADMIN_OPS, apply
from gaemi.engine.codes import RejectReason as R
from gaemi.risk import Deposit, SetIndexPrice, Venue, preset, usd
from tests.clients.test_orderflow import FILE_ACCOUNT, SYMBOL, lobster_flow
from tests.gateway.live import live_server


def test_a_flow_replayed_live_builds_the_book_it_builds_in_process() -> None:
    # Arrange: the AAPL sample's adds and cancels of one account (one connection keeps their
    # order), the admin records first
    flow = [r for r in lobster_flow(400) if r.op in ADMIN_OPS or r.account == FILE_ACCOUNT]
    admin_records = [r for r in flow if r.op in ADMIN_OPS]
    orders = [r for r in flow if r.op not in ADMIN_OPS]
    assert len(orders) > 300
    index = next(r.args["price"] for r in admin_records if r.op == "admin.setIndex")

    # the in-process reference: the same deposits (the server funds dev accounts with $1M)
    reference = Venue([preset(SYMBOL, session=None)], start_ts=orders[0].ts - 1)
    reference.submit(Deposit(FILE_ACCOUNT, usd(1_000_000)))
    reference.submit(SetIndexPrice(SYMBOL, index))
    applied = apply([r for r in admin_records if r.op != "admin.setIndex"] + orders,
                    reference)
    refused = sum(1 for a in applied if any(e.kind == "rejected" for e in a.events))

    with live_server(markets=[preset(SYMBOL, session=None)]) as live:
        keys = {FILE_ACCOUNT: ("dev-1", live.server.keys["dev-1"].secret)}
        admin = ("admin", live.server.keys["admin"].secret)

        # Act: admin records, then the orders at 1,000x real time
        first = asyncio.run(replay_live(live.url, admin_records, keys=keys, admin=admin,
                                        speed=0))
        stats = asyncio.run(replay_live(live.url, orders, keys=keys, speed=1_000,
                                        encoding="json"))
        book = live.on_loop(lambda: live.server.venue.book(SYMBOL).depth(1000))
        live.on_loop(live.server.venue.check_invariants)

    # Assert: every request answered; the same refusals (cancels of orders placed before the
    # file began); the same book level for level
    assert first.ok == len(admin_records)
    assert stats.sent == len(orders) and stats.ok + sum(stats.refused.values()) == len(orders)
    assert sum(stats.refused.values()) == refused
    assert set(stats.refused) <= {R.UNKNOWN_ORDER}
    assert book == reference.book(SYMBOL).depth(1000)
    assert book[0] and book[1]


def test_a_flow_account_without_a_key_is_refused_before_anything_is_sent() -> None:
    flow = [r for r in lobster_flow(400) if r.op not in ADMIN_OPS]
    with pytest.raises(ValueError, match="no API key"):
        asyncio.run(replay_live("ws://127.0.0.1:9", flow, keys={}))
