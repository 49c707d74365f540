"""The client library against a real server on a loopback ephemeral port, in both encodings:
logon, orders, fills, pipelining, local books and their gap recovery, connection loss.

Each test runs its own event loop (``asyncio.run``) and server. Waits are for conditions, with
generous timeouts that only guard against hangs; nothing depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable
from typing import Any

import pytest

from gaemi.clients.live.book import BookFeed, follow_book
from gaemi.clients.live.client import Client, ConnectionLost, RequestError, connect, place_args
from gaemi.engine.codes import RejectReason as R
from gaemi.gateway.server import Server
from gaemi.gateway.wire.errors import GatewayCode as G
from tests.clients.aio import GUARD, INDEX, SYMBOL, exchange, run, until

UNIT = 1_000_000
ENCODINGS = ["json", "msgpack"]




async def trader(srv: Server, n: int, encoding: str = "json", **logon: Any) -> Client:
    client = await Client.connect(srv.url, encoding)
    await client.logon(f"dev-{n}", srv.keys[f"dev-{n}"].secret, **logon)
    return client


def levels(snapshot: dict[str, Any]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    return ([tuple(x) for x in snapshot["bids"]], [tuple(x) for x in snapshot["asks"]])


async def burst(clients: list[Client], n: int, seed: int) -> None:
    """``n`` random orders around the index from ``clients``, pipelined: resting orders,
    crossing orders (trades), cancels and amends."""
    rng = random.Random(seed)
    resting: list[tuple[Client, int]] = []
    for start in range(0, n, 25):
        owners: list[Client] = []
        window: list[Awaitable[Any]] = []
        for _ in range(min(25, n - start)):
            roll = rng.random()
            if roll < 0.15 and resting:
                c, oid = resting.pop(rng.randrange(len(resting)))
                request = c.request("order.cancel", {"symbol": SYMBOL, "orderId": oid})
            elif roll < 0.25 and resting:
                c, oid = rng.choice(resting)
                request = c.request("order.amend", {
                    "symbol": SYMBOL, "orderId": oid, "price": INDEX + rng.randint(-40, 40)})
            else:
                c = rng.choice(clients)
                side = rng.choice(["BUY", "SELL"])
                request = c.request("order.place", place_args(
                    SYMBOL, side, rng.randint(1, 3_000), INDEX + rng.randint(-60, 60)))
            owners.append(c)
            window.append(request)
        results = await asyncio.gather(*window, return_exceptions=True)
        for c, result in zip(owners, results, strict=True):
            if isinstance(result, dict) and result.get("status") in ("NEW", "PARTIALLY_FILLED"):
                resting.append((c, result["orderId"]))
            elif isinstance(result, BaseException) and not isinstance(result, RequestError):
                raise result


# -- session -------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_logon_then_account_queries(encoding: str) -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _), connect(srv.url, encoding) as client:
            # Act
            before = await client.ping()
            logon = await client.logon("dev-2", srv.keys["dev-2"].secret)
            balance = await client.balance()
            positions = await client.positions()
            orders = await client.open_orders()
            spec = await client.instrument(SYMBOL)

            # Assert
            assert client.encoding == f"gaemi.{encoding}"
            assert before["serverTime"] > 0
            assert logon["accountId"] == 2 and client.account_id == 2
            assert logon["admin"] is False and client.limits["ordersPerSecond"] > 0
            assert balance["balance"] == 1_000_000 * UNIT
            assert positions == [] and orders == []
            assert spec["mark"] == INDEX and spec["multiplier"] == 10

    run(scenario())


def test_a_bad_signature_is_refused_and_the_connection_stays_usable() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _), connect(srv.url) as client:
            # Act
            with pytest.raises(RequestError) as refused:
                await client.logon("dev-1", "not the secret")
            with pytest.raises(RequestError) as private:
                await client.balance()
            pong = await client.ping()

            # Assert
            assert refused.value.code is G.BAD_SIGNATURE
            assert refused.value.op == "session.logon"
            assert private.value.code is G.NOT_LOGGED_IN
            assert client.account_id is None
            assert "time" in pong

    run(scenario())


# -- orders ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_place_amend_cancel(encoding: str) -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            client = await trader(srv, 1, encoding)
            try:
                # Act
                placed = await client.place(SYMBOL, "BUY", 500, INDEX - 100,
                                            client_order_id="bid-1")
                listed = await client.open_orders(SYMBOL)
                amended = await client.amend(SYMBOL, placed["orderId"], price=INDEX - 90)
                listed_after = await client.open_orders()
                canceled = await client.cancel(SYMBOL, client_order_id="bid-1")
                with pytest.raises(RequestError) as gone:
                    await client.cancel(SYMBOL, placed["orderId"])
                with pytest.raises(RequestError) as band:
                    await client.place(SYMBOL, "BUY", 1, INDEX * 2)
                left = await client.open_orders()
            finally:
                await client.close()

            # Assert
            assert placed["status"] == "NEW" and placed["remainingQty"] == 500
            assert placed["clientOrderId"] == "bid-1"
            assert [(o["orderId"], o["price"], o["qty"]) for o in listed] == \
                [(placed["orderId"], INDEX - 100, 500)]
            assert amended == {"orderId": placed["orderId"], "symbol": SYMBOL,
                               "price": INDEX - 90, "qty": 500}
            assert listed_after[0]["price"] == INDEX - 90
            assert canceled["canceledQty"] == 500
            assert gone.value.code is R.UNKNOWN_ORDER
            assert band.value.code is R.PRICE_OUTSIDE_BAND
            assert left == []

    run(scenario())


def test_client_helpers_refuse_non_integer_numbers_before_sending() -> None:
    # Arrange / Act / Assert: a float price would be refused by the server (8001) anyway
    with pytest.raises(TypeError):
        place_args(SYMBOL, "BUY", 1, 120_000.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        place_args(SYMBOL, "BUY", True, 120_000)
    with pytest.raises(ValueError):
        place_args(SYMBOL, "HOLD", 1, 120_000)
    assert place_args(SYMBOL, "sell", 3, type="MARKET", reduce_only=True) == {
        "symbol": SYMBOL, "side": "SELL", "qty": 3, "type": "MARKET", "reduceOnly": True}


@pytest.mark.parametrize("maker_encoding, taker_encoding", [("json", "msgpack"),
                                                            ("msgpack", "json")])
def test_two_clients_trade_and_each_sees_its_fills(maker_encoding: str,
                                                   taker_encoding: str) -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            maker = await trader(srv, 1, maker_encoding)
            taker = await trader(srv, 2, taker_encoding)
            maker_fills: list[dict] = []
            taker_fills: list[dict] = []
            taker_positions: list[dict] = []
            await maker.subscribe(["fills"], handler=lambda p: maker_fills.append(p["data"]))
            await taker.subscribe(["fills"], handler=lambda p: taker_fills.append(p["data"]))
            await taker.subscribe(["positions"],
                                  handler=lambda p: taker_positions.append(p["data"]))
            try:
                ask = await maker.place(SYMBOL, "SELL", 1_000, INDEX + 10)

                # Act
                took = await taker.place(SYMBOL, "BUY", 600, INDEX + 20, tif="IOC")
                seen_by_taker_at_response = list(taker_fills)
                await until(lambda: maker_fills, "the maker's fill")
                maker_position = await maker.position(SYMBOL)
            finally:
                await maker.close()
                await taker.close()

            # Assert: the private pushes of a request come before its response (§2)
            assert took["status"] == "FILLED" and took["filledQty"] == 600
            assert len(seen_by_taker_at_response) == 1
            assert taker_positions and taker_positions[-1]["size"] == 600
            (tf,), (mf,) = taker_fills, maker_fills
            assert (tf["role"], tf["side"], tf["qty"], tf["price"]) == ("taker", "BUY", 600,
                                                                        INDEX + 10)
            assert (mf["role"], mf["side"], mf["qty"], mf["orderId"]) == ("maker", "SELL", 600,
                                                                          ask["orderId"])
            assert tf["tradeId"] == mf["tradeId"]
            assert maker_position is not None and maker_position["size"] == -600
            assert maker.gaps == {} and taker.gaps == {}

    run(scenario())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_pipelined_requests_all_get_their_own_response(encoding: str) -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            client = await trader(srv, 1, encoding)
            try:
                # Act: one window from one task, one window of concurrent tasks (the
                # market takes 200 open orders per account)
                calls = [("order.place", place_args(SYMBOL, "BUY", i + 1, INDEX - 200 - i))
                         for i in range(120)] + [("ping", None)] * 50
                many = await client.request_many(calls)
                gathered = await asyncio.gather(*(
                    client.place(SYMBOL, "SELL", i + 1, INDEX + 200 + i) for i in range(60)))
                orders = await client.open_orders(SYMBOL)
            finally:
                await client.close()

            # Assert: each response answers its own request
            placed = many[:120]
            assert [r["remainingQty"] for r in placed] == list(range(1, 121))
            assert all("serverTime" in r for r in many[120:])
            assert [r["remainingQty"] for r in gathered] == list(range(1, 61))
            ids = {r["orderId"] for r in placed} | {r["orderId"] for r in gathered}
            assert len(ids) == 180 == len(orders)
            assert {o["orderId"]: o["price"] for o in orders}[gathered[7]["orderId"]] == \
                INDEX + 207

    run(scenario())


def test_a_batch_answers_each_item_in_order() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            client = await trader(srv, 1)
            try:
                # Act
                results = await client.batch([
                    ("order.place", place_args(SYMBOL, "BUY", 10, INDEX - 5)),
                    ("order.place", place_args(SYMBOL, "BUY", 10, INDEX * 2)),
                    {"op": "order.cancel", "args": {"symbol": SYMBOL, "orderId": 10**9}},
                ])
                count = await client.cancel_all()
            finally:
                await client.close()

            # Assert
            assert results[0]["status"] == "NEW"
            assert isinstance(results[1], RequestError)
            assert results[1].code is R.PRICE_OUTSIDE_BAND
            assert isinstance(results[2], RequestError) and results[2].code is R.UNKNOWN_ORDER
            assert count == 1

    run(scenario())


def test_cancel_on_disconnect_and_the_dead_man_switch() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            first = await trader(srv, 1, cancel_on_disconnect=True)
            await first.place(SYMBOL, "BUY", 10, INDEX - 5)
            second = await trader(srv, 1)
            try:
                seen = len(await second.open_orders())

                # Act
                await first.close()
                remaining: list[int] = []

                async def drained() -> None:
                    while True:
                        remaining.append(len(await second.open_orders()))
                        if remaining[-1] == 0:
                            return
                        await asyncio.sleep(0.01)
                await asyncio.wait_for(drained(), GUARD)
                armed = await second.cancel_all_after(60_000)
                disarmed = await second.cancel_all_after(0)
            finally:
                await second.close()

            # Assert
            assert seen == 1 and remaining[-1] == 0
            assert armed["deadline"] > 0 and disarmed["deadline"] == 0

    run(scenario())


# -- local books -----------------------------------------------------------------------------------


def test_local_books_of_two_clients_agree_with_the_server_after_a_burst() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            watcher_json = await Client.connect(srv.url, "json")
            watcher_msgpack = await Client.connect(srv.url, "msgpack")
            feeds = [await follow_book(watcher_json, SYMBOL),
                     await follow_book(watcher_msgpack, SYMBOL)]
            traders = [await trader(srv, 1), await trader(srv, 2, "msgpack")]
            try:
                # Act
                await burst(traders, 400, seed=7)
                snap = await admin.snapshot_book(SYMBOL, depth=1000)
                books = [await f.wait_synced(snap["seq"], GUARD) for f in feeds]
            finally:
                for c in (watcher_json, watcher_msgpack, *traders):
                    await c.close()

            # Assert: both copies equal the server's book, and no gap was needed
            assert snap["seq"] > 10 and snap["bids"] and snap["asks"]
            assert all(b.seq == snap["seq"] for b in books)
            assert books[0].depth() == books[1].depth() == levels(snap)
            assert not books[0].crossed()
            assert [f.resyncs for f in feeds] == [0, 0]
            assert watcher_json.gaps == {} and watcher_msgpack.gaps == {}

    run(scenario())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_lost_delta_is_detected_and_the_book_resyncs_by_itself(encoding: str) -> None:
    async def scenario() -> None:
        async with exchange() as (srv, admin):
            watcher = await Client.connect(srv.url, encoding)
            lost: list[int] = []

            def drop(push: dict) -> bool:  # lose the 3rd and the 8th delta in transit
                if push["ch"] == f"book.{SYMBOL}" and push["data"]["type"] == "delta" \
                        and push["seq"] in (3, 8) and push["seq"] not in lost:
                    lost.append(push["seq"])
                    return True
                return False
            watcher.drop_push = drop
            gap_reports: list[tuple[str, int, int]] = []
            watcher.on_gap(lambda ch, last, push: gap_reports.append((ch, last, push["prev"])))
            feed: BookFeed = await follow_book(watcher, SYMBOL)
            traders = [await trader(srv, 1), await trader(srv, 2)]
            try:
                # Act: a burst, then ten orders one at a time (ten more deltas at least: a
                # lost delta shows only when the next one arrives)
                await burst(traders, 300, seed=11)
                for i in range(10):
                    await traders[0].place(SYMBOL, "BUY", 1 + i, INDEX - 500 - i)
                snap = await admin.snapshot_book(SYMBOL, depth=1000)
                book = await feed.wait_synced(snap["seq"], GUARD)
            finally:
                for c in (watcher, *traders):
                    await c.close()

            # Assert
            assert lost == [3, 8] and snap["seq"] >= 11
            assert [(ch, prev) for ch, _, prev in gap_reports] == [(f"book.{SYMBOL}", 3),
                                                                  (f"book.{SYMBOL}", 8)]
            assert watcher.gaps[f"book.{SYMBOL}"] == 2
            assert feed.resyncs == 2 and book.gaps == 2
            assert book.depth() == levels(snap)

    run(scenario())


def test_a_book_feed_stops_and_a_new_subscription_starts_afresh() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            watcher = await Client.connect(srv.url)
            client = await trader(srv, 1)
            try:
                feed = await follow_book(watcher, SYMBOL)
                await client.place(SYMBOL, "BUY", 7, INDEX - 3)
                await until(lambda: feed.book.best_bid() is not None, "the first bid")
                await feed.stop()

                # Act: the book changes while nobody on this connection follows it
                await client.place(SYMBOL, "BUY", 9, INDEX - 2)
                again = await follow_book(watcher, SYMBOL)
                await until(lambda: again.book.best_bid() == (INDEX - 2, 9), "the new bid")
            finally:
                await watcher.close()
                await client.close()

            # Assert: the old feed saw no more; the new one started from a snapshot
            assert feed.book.best_bid() == (INDEX - 3, 7)
            assert again.book.snapshots == 1 and again.resyncs == 0
            assert watcher.gaps == {}

    run(scenario())


def test_an_unknown_channel_is_refused_and_leaves_no_handler() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _), connect(srv.url) as client:
            seen: list[dict] = []

            # Act
            with pytest.raises(RequestError) as refused:
                await client.subscribe(["book.NOPE-PERP"], handler=seen.append)
            with pytest.raises(RequestError) as private:
                await client.subscribe(["fills"])

            # Assert
            assert refused.value.code is G.UNKNOWN_TOPIC
            assert private.value.code is G.NOT_LOGGED_IN
            assert client._handlers.get("book.NOPE-PERP") == []

    run(scenario())


def test_pushes_reach_handlers_queues_and_iterators_alike() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            watcher = await Client.connect(srv.url, "msgpack")
            channel = f"trades.{SYMBOL}"
            everything: list[dict] = []
            watcher.add_handler("*", everything.append)
            queue = watcher.queue(channel)
            iterated: list[dict] = []

            pushes = watcher.pushes(channel)  # registered from here on

            async def iterate() -> None:
                async for push in pushes:
                    iterated.append(push)
            reader = asyncio.create_task(iterate())
            await watcher.subscribe([channel])
            maker, taker = await trader(srv, 1), await trader(srv, 2)
            try:
                # Act: two trades
                await maker.place(SYMBOL, "SELL", 10, INDEX + 1)
                await taker.place(SYMBOL, "BUY", 4, INDEX + 1)
                await taker.place(SYMBOL, "BUY", 6, INDEX + 1)
                queued = [await asyncio.wait_for(queue.get(), GUARD) for _ in range(2)]
                await until(lambda: len(iterated) == 2, "the iterator's pushes")
            finally:
                for c in (maker, taker, watcher):
                    await c.close()
            await asyncio.wait_for(reader, GUARD)  # the iterator ends with the connection

            # Assert
            assert [p["data"]["qty"] for p in queued] == [4, 6]
            assert iterated == queued
            assert [p for p in everything if p["ch"] == channel] == queued
            assert [p["seq"] for p in queued] == [1, 2] and queued[1]["prev"] == 1
            assert await asyncio.wait_for(queue.get(), GUARD) is None

    run(scenario())


# -- closing ------------------------------------------------------------------------------------


def test_a_lost_connection_fails_pending_and_later_requests() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            client = await Client.connect(srv.url, "msgpack")
            queue = client.queue("trades." + SYMBOL)

            # Act: a frame beyond the server's read limit makes it close the connection
            # (1009) before it reads the ping queued behind it
            await client.send_raw(b"\x00" * (2 * 2**20))
            with pytest.raises(ConnectionLost) as pending:
                await client.request("ping")
            with pytest.raises(ConnectionLost) as later:
                await client.ping()
            end = await asyncio.wait_for(queue.get(), GUARD)
            await client.close()  # closing a closed client is harmless

            # Assert
            assert isinstance(pending.value, ConnectionError)
            assert pending.value.code == 1009 and "1009" in str(pending.value)
            assert later.value.code == 1009
            assert client.closed and end is None

    run(scenario())


def test_a_clean_close_ends_the_reader_and_refuses_new_requests() -> None:
    async def scenario() -> None:
        async with exchange() as (srv, _):
            async with connect(srv.url) as client:
                await client.ping()
            # Act
            with pytest.raises(ConnectionLost) as after:
                await client.ping()

            # Assert
            assert client.closed and client.close_code == 1000
            assert "closed by the client" in str(after.value)

    run(scenario())


def test_a_server_shutdown_is_a_connection_error_for_the_client() -> None:
    async def scenario() -> None:
        srv = Server(port=0, dev_accounts=1)
        await srv.start()
        client = await trader(srv, 1)

        # Act
        await srv.stop()
        await asyncio.wait_for(client.wait_closed(), GUARD)
        with pytest.raises(ConnectionError) as after:
            await client.balance()

        # Assert
        assert client.close_code == 1001
        assert "1001" in str(after.value)

    run(scenario())
