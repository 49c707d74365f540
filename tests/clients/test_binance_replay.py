"""Binance USDⓈ-M recordings: the reader, the local book against every bookTicker, and the
book as background liquidity of an engine book and of a venue market.

The figures asserted are the measured results on the real files (docs/replay.md); the negative
controls show that each check can fail.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gaemi.clients.replay.binance import (
    BackgroundLiquidity,
    BookTicker,
    DepthDiff,
    EngineSink,
    RecordingError,
    SequenceGap,
    Snapshot,
    Trade,
    VenueSink,
    read_recording,
    replay,
    sample_file,
)
from gaemi.clients.replay.rescale import Rescale
from gaemi.engine.codes import Side, TimeInForce
from gaemi.risk import (
    AdvanceTime,
    Deposit,
    MarginTier,
    MarketSpec,
    PlaceOrder,
    SetIndexPrice,
    Venue,
    usd,
)
from tests.conftest import book_class

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "hftbacktest-feeds"
BTC_GRID = Rescale(tick="0.1", lot="0.001")  # BTCUSDT perpetual: tick 0.10, step 0.001 BTC
TO_TICK = 10**7  # 10**-8 units per 0.1 tick
SAMPLE_MIRROR_HASH = "9d26db438c9ac4b3"
COARSE_TOP_AS_SOURCE = 1_135  # measured: the shipped slice mirrored on BTC_GRID


def shared(name: str) -> Path:
    path = SHARED / name
    if not path.exists():
        pytest.skip(f"{path} is not here (the shared data folder is optional)")
    return path


@pytest.fixture(scope="module")
def sample() -> list[Any]:
    return list(read_recording(sample_file()))


@pytest.fixture(scope="module")
def recordings() -> dict[str, list[Any]]:
    """The real files, each read once per module (when the shared folder is here)."""
    cache: dict[str, list[Any]] = {}
    return cache


def real(recordings: dict[str, list[Any]], name: str) -> list[Any]:
    if name not in recordings:
        recordings[name] = list(read_recording(shared(name)))
    return recordings[name]


# -- the reader ------------------------------------------------------------------------------------


def test_reader_sample_has_the_documented_records(sample) -> None:
    # Arrange / Act
    kinds = [type(r) for r in sample]
    snapshot = next(r for r in sample if isinstance(r, Snapshot))
    first = sample[0]

    # Assert: the counts of the shipped slice (clients/replay/data/binance/README.md)
    assert len(sample) == 15_738
    assert (kinds.count(DepthDiff), kinds.count(BookTicker), kinds.count(Trade),
            kinds.count(Snapshot)) == (1_148, 12_088, 2_501, 1)
    assert snapshot.line == 55 and snapshot.last_update_id == 5_123_107_852_948
    assert len(snapshot.bids) == len(snapshot.asks) == 1000
    assert snapshot.bids[0] == (6_180_020_000_000, 290_900_000)  # "61800.20", "2.909"
    assert isinstance(first, DepthDiff) and first.line == 1
    assert (first.first_id, first.final_id, first.prev_final_id) == (
        5_123_107_832_006, 5_123_107_837_557, 5_123_107_831_937)
    assert first.bids[0] == (5_871_020_000_000, 1_400_000)  # "58710.20", "0.014"
    assert first.local_ns == 1_723_161_255_030_314_667 and first.event_ms == 1_723_161_256_299


def test_reader_names_the_line_it_cannot_read(tmp_path: Path) -> None:
    # Arrange: a good line, then a price written as a float
    good = ('1 {"stream":"x@trade","data":{"e":"trade","E":1,"T":1,"s":"X","t":7,'
            '"p":"61800.30","q":"0.006","X":"MARKET","m":false}}')
    path = tmp_path / "rec.txt"
    path.write_text(good + "\n" + good.replace('"61800.30"', "61800.3") + "\n")

    # Act
    records = []
    with pytest.raises(RecordingError) as caught:
        for r in read_recording(path):
            records.append(r)

    # Assert
    assert caught.value.line == 2
    assert records == [Trade(1, 1, 1, 1, 7, 6_180_030_000_000, 600_000, False, "MARKET")]


def test_reader_refuses_more_than_eight_decimals(tmp_path: Path) -> None:
    path = tmp_path / "rec.gz"
    with gzip.open(path, "wt") as f:
        f.write('5 {"stream":"x@bookTicker","data":{"e":"bookTicker","u":1,"E":1,'
                '"b":"1.000000001","B":"1","a":"2","A":"1"}}\n')
    with pytest.raises(RecordingError, match="line 1"):
        list(read_recording(path))


# -- the local book against every bookTicker --------------------------------------------------


def test_sample_book_matches_every_ticker_it_can_know(sample) -> None:
    # Act
    report = replay(sample)

    # Assert: the sync rules held; every ticker is accounted for, none contradicted
    assert report.first_diff == (5_123_107_850_310, 5_123_107_853_551, 5_123_107_852_948)
    assert report.first_diff[0] <= report.first_diff[2] + 1 <= report.first_diff[1] + 1
    assert (report.diffs_applied, report.diffs_dropped_before_snapshot) == (1_144, 4)
    assert report.gaps == [] and report.crossed_after_diff == 0
    assert (report.tickers_exact, report.tickers_exact_equal) == (108, 108)
    assert (report.tickers_inside_diff, report.tickers_inside_consistent) == (11_947, 11_947)
    assert report.ticker_sides_unlisted == 1_216
    assert (report.tickers_unsynced, report.tickers_late, report.tickers_after_last_diff) == (
        31, 0, 2)
    assert report.tickers == 12_088 and report.tickers_contradicted == 0
    assert (report.trades, report.trade_id_gaps) == (2_501, 0)


@pytest.mark.parametrize(("name", "expected"), [
    ("usdm/btcusdt_20240808.gz", dict(
        diffs_applied=6_547, diffs_dropped_before_snapshot=4, tickers=66_089,
        tickers_exact=629, tickers_exact_equal=629, tickers_inside_diff=65_429,
        tickers_inside_consistent=65_429, ticker_sides_unlisted=6_092,
        tickers_inside_equal_after=5_499, tickers_unsynced=31, tickers_after_last_diff=0,
        trades=21_313, trade_id_gaps=0,
        first_diff=(5_123_107_850_310, 5_123_107_853_551, 5_123_107_852_948))),
    # ETH's first applied diff ends exactly at the snapshot's id: the futures rule
    # (u >= lastUpdateId) keeps it, the spot rule (u >= lastUpdateId + 1) would drop it; both
    # give the same book, since quantities are absolute
    ("usdm/ethusdt_20240808.gz", dict(
        diffs_applied=6_581, diffs_dropped_before_snapshot=5, tickers=53_992,
        tickers_exact=551, tickers_exact_equal=551, tickers_inside_diff=53_411,
        tickers_inside_consistent=53_411, ticker_sides_unlisted=7_435,
        tickers_inside_equal_after=5_295, tickers_unsynced=30, tickers_after_last_diff=0,
        trades=14_076, trade_id_gaps=0,
        first_diff=(5_123_107_853_791, 5_123_107_856_276, 5_123_107_856_276))),
    # COIN-M: the inverse contract, quantities in contracts of $100
    ("cm/btcusd_perp_20240808.gz", dict(
        diffs_applied=26_824, diffs_dropped_before_snapshot=23, tickers=19_136,
        tickers_exact=1_124, tickers_exact_equal=1_124, tickers_inside_diff=18_002,
        tickers_inside_consistent=18_002, ticker_sides_unlisted=8_954,
        tickers_inside_equal_after=5_490, tickers_unsynced=10, tickers_after_last_diff=0,
        trades=2_286, trade_id_gaps=0,
        first_diff=(1_007_198_635_026, 1_007_198_635_121, 1_007_198_635_033))),
])
def test_real_recordings_reconstruct_every_ticker_they_determine(recordings, name: str,
                                                                 expected) -> None:
    # Act
    report = replay(real(recordings, name))

    # Assert: the measured figures; nothing contradicted, nothing unaccounted
    summary = report.summary() | {"first_diff": report.first_diff}
    assert {k: summary[k] for k in expected} == expected
    assert report.tickers_contradicted == 0 and report.gaps == []
    assert report.crossed_after_diff == 0 and report.tickers_late == 0


# -- negative controls -----------------------------------------------------------------------------


def _first_exact_ticker(records: list[Any]) -> tuple[int, int]:
    """Indexes of the first diff whose final id a ticker repeats, and of that ticker."""
    finals = {r.final_id: i for i, r in enumerate(records) if isinstance(r, DepthDiff)}
    for j, r in enumerate(records):
        if isinstance(r, BookTicker) and r.update_id in finals and finals[r.update_id] > 60:
            return finals[r.update_id], j
    raise AssertionError("no exact ticker")


def test_a_wrong_level_quantity_is_caught(sample) -> None:
    # Arrange: the diff a ticker repeats now says one more unit at the ticker's best bid
    records = list(sample)
    i, j = _first_exact_ticker(records)
    t = records[j]
    diff = records[i]
    bids = tuple(lv for lv in diff.bids if lv[0] != t.bid) + ((t.bid, t.bid_qty + 1),)
    records[i] = replace(diff, bids=bids)

    # Act
    report = replay(records)

    # Assert
    assert report.tickers_exact_equal == report.tickers_exact - 1
    assert report.tickers_contradicted >= 1
    assert any(f"line {t.line} " in m for m in report.mismatches)


def test_a_wrong_ticker_inside_a_diff_is_caught(sample) -> None:
    # Arrange: a ticker inside a diff whose best ask the diff does not list, its size off by 1
    report = replay(sample)
    records = list(sample)
    diffs = [r for r in records if isinstance(r, DepthDiff)]
    for j, r in enumerate(records):
        if not isinstance(r, BookTicker):
            continue
        covering = next((d for d in diffs if d.first_id <= r.update_id < d.final_id), None)
        if covering is not None and r.ask not in {p for p, _ in covering.asks} and j > 2000:
            records[j] = replace(r, ask_qty=r.ask_qty + 1)
            break

    # Act
    tampered = replay(records)

    # Assert
    assert tampered.tickers_inside_consistent == report.tickers_inside_consistent - 1
    assert tampered.tickers_contradicted == 1


def test_a_missing_diff_is_a_sequence_gap_naming_its_line(sample) -> None:
    # Arrange: drop the 100th diff
    diffs = [i for i, r in enumerate(sample) if isinstance(r, DepthDiff)]
    records = sample[: diffs[100]] + sample[diffs[100] + 1:]
    next_line = sample[diffs[101]].line

    # Act / Assert: raised by default ...
    with pytest.raises(SequenceGap) as caught:
        replay(records)
    assert caught.value.line == next_line and "pu=" in caught.value.msg

    # ... or counted, and the book waits for a snapshot that never comes
    report = replay(records, on_gap="resync")
    assert len(report.gaps) == 1 and f"line {next_line}:" in report.gaps[0]
    assert report.diffs_applied == 100 - 4  # the 4 before the snapshot were dropped
    assert report.diffs_unapplied == 1_148 - 1 - 100
    assert report.tickers_contradicted == 0
    assert report.tickers_after_last_diff > 10_000  # left unchecked, and said so


def test_resync_after_a_gap_on_a_later_snapshot(sample) -> None:
    # Arrange: drop the 100th diff, and add a REST snapshot of the book after the 200th diff
    # arriving (as a real one would) a few diffs later
    diffs = [i for i, r in enumerate(sample) if isinstance(r, DepthDiff)]
    captured: dict[str, Any] = {}

    def capture(local, changes, record) -> None:
        if record is sample[diffs[200]]:
            captured["bids"] = tuple(reversed(local.bids.items()))  # best first, like REST
            captured["asks"] = tuple(local.asks.items())
        captured["book"] = local

    untampered = replay(sample, on_book=capture)
    local = captured["book"]  # the untampered book at the end, on the BTC grid
    final = ([(p // TO_TICK, q // 10**5) for p, q in reversed(local.bids.items())],
             [(p // TO_TICK, q // 10**5) for p, q in local.asks.items()])
    at = sample[diffs[205]]
    snapshot = Snapshot(at.line, at.local_ns, at.event_ms, sample[diffs[200]].final_id,
                        captured["bids"], captured["asks"])
    records = (sample[: diffs[100]] + sample[diffs[100] + 1: diffs[205] + 1] + [snapshot]
               + sample[diffs[205] + 1:])

    book = book_class("auto")()
    liquidity = BackgroundLiquidity(BTC_GRID, EngineSink(book), rounding="exact")

    # Act
    report = replay(records, on_gap="resync", on_book=liquidity.on_book)

    # Assert: one gap, two snapshots; the 99 diffs 101..199 are older than the new snapshot,
    # and from diff 200 on every ticker is checked again, none contradicted
    assert len(report.gaps) == 1 and report.snapshots_loaded == 2
    assert report.diffs_applied == untampered.diffs_applied - 1 - 99
    assert report.diffs_dropped_before_snapshot == 4 + 99
    assert report.tickers_contradicted == 0 and report.tickers == untampered.tickers
    assert report.tickers_after_last_diff == untampered.tickers_after_last_diff
    assert report.tickers_unsynced > untampered.tickers_unsynced
    assert report.final_top == untampered.final_top
    # the mirror followed the second snapshot too: the engine holds the recording's book
    assert book.depth(100_000) == final


def test_a_first_diff_that_does_not_bracket_the_snapshot_is_a_gap(sample) -> None:
    # Arrange: drop the diff that brackets lastUpdateId
    snapshot = next(r for r in sample if isinstance(r, Snapshot))
    bracket = next(i for i, r in enumerate(sample) if isinstance(r, DepthDiff)
                   and r.first_id <= snapshot.last_update_id + 1 and
                   r.final_id >= snapshot.last_update_id)
    records = sample[:bracket] + sample[bracket + 1:]

    # Act / Assert
    with pytest.raises(SequenceGap, match="first diff after the snapshot"):
        replay(records)


# -- background liquidity --------------------------------------------------------------------------


def _mirror(records: list[Any], book: Any, grid: Rescale, rounding: str) -> dict[str, Any]:
    """Replay with the book mirrored into ``book``; compare the tops after every diff."""
    liquidity = BackgroundLiquidity(grid, EngineSink(book), rounding=rounding)
    out = {"diffs": 0, "top_equal": 0, "top_as_source": 0, "crossed": 0}
    to_ticks = grid.unit_mapper(8)

    def on_book(local, changes, record) -> None:
        liquidity.on_book(local, changes, record)
        have = (book.best_bid(), book.best_ask())
        (bid, _), (ask, _) = liquidity.target(Side.BUY, 1)[0], liquidity.target(Side.SELL, 1)[0]
        source_bid, _, source_ask, _ = local.top()
        out["diffs"] += 1
        out["top_equal"] += have == (bid, ask)
        out["top_as_source"] += have == (to_ticks(source_bid, "floor"),
                                         to_ticks(source_ask, "ceil"))
        out["crossed"] += have[0] >= have[1]

    out["report"] = replay(records, on_book=on_book)
    out["liquidity"] = liquidity
    return out


def test_background_liquidity_drives_an_engine_book_level_for_level(sample, impl) -> None:
    # Arrange
    book = book_class(impl)()

    # Act
    out = _mirror(sample, book, BTC_GRID, "exact")

    # Assert: after the snapshot and every diff, the engine's touch is the recording's
    liquidity = out["liquidity"]
    assert out["diffs"] == 1 + 1_144
    assert out["top_equal"] == out["top_as_source"] == out["diffs"]
    assert liquidity.stats.refused == 0 and liquidity.stats.fills_observed == 0
    # at the end every level, not just the top: one order per level
    bids, asks = book.depth(100_000)
    local = out["report"].final_top
    assert bids[0] == (local[0] // TO_TICK, local[1] // 100_000)
    assert (bids, asks) == (liquidity.target(Side.BUY), liquidity.target(Side.SELL))
    assert len(book) == len(bids) + len(asks) > 2_000
    book.check_invariants()
    assert f"{book.state_hash():016x}" == SAMPLE_MIRROR_HASH  # the same on both books


def test_outward_rounding_onto_a_coarse_grid_never_crosses(sample, impl) -> None:
    # Arrange: $1 ticks and 0.01 BTC lots: many source levels share a tick
    book = book_class(impl)()
    coarse = Rescale(tick="1", lot="0.01")

    # Act
    out = _mirror(sample, book, coarse, "outward")

    # Assert: the touch is the mapped book's, never locked; where the source's best level
    # has a whole lot at its tick, it is the source's bid rounded down and ask rounded up
    assert out["top_equal"] == out["diffs"] and out["crossed"] == 0
    assert out["liquidity"].stats.refused == 0
    assert out["top_as_source"] == COARSE_TOP_AS_SOURCE
    bids, asks = book.depth(5)
    local = out["report"].final_top
    assert bids[0][0] <= local[0] // 10**8 and asks[0][0] >= -(-local[2] // 10**8)


def test_exact_rounding_refuses_a_grid_the_prices_are_not_on(sample, impl) -> None:
    with pytest.raises(ValueError, match="not on the grid"):
        _mirror(sample, book_class(impl)(), Rescale(tick="1", lot="0.001"), "exact")


def test_real_btc_day_mirrored_into_an_engine_book(recordings) -> None:
    # Arrange
    book = book_class("auto")()

    # Act
    out = _mirror(real(recordings, "usdm/btcusdt_20240808.gz"), book, BTC_GRID, "exact")

    # Assert: 6,548 states (the snapshot and 6,547 diffs), every touch equal
    assert out["diffs"] == out["top_equal"] == out["top_as_source"] == 6_548
    stats = out["liquidity"].stats
    assert (stats.places, stats.amends, stats.cancels, stats.refused) == (
        87_820, 240_638, 78_224, 0)
    bids, asks = book.depth(100_000)
    assert (len(bids), len(asks)) == (5_018, 4_578)
    assert (bids[0], asks[0]) == ((616_597, 1_486), (616_598, 981))


BTC_PERP = MarketSpec("BTCUSDT-PERP", "Binance BTCUSDT perpetual", tick_size=100_000,
                      lot_size="0.001", tiers=(MarginTier(None, 20, 25_000_000),),
                      max_open_orders=1_000)


def test_background_liquidity_in_a_venue_market_with_a_trader(sample) -> None:
    # Arrange: the background on account 9 (top 50 levels a side), a trader on account 5
    start = next(r for r in sample if isinstance(r, Snapshot)).event_ms * 10**6
    venue = Venue([BTC_PERP], start_ts=start)
    grid = Rescale.for_market(BTC_PERP)
    venue.submit(Deposit(9, 10**15))
    venue.submit(Deposit(5, usd(1_000_000)))
    sink = VenueSink(venue, "BTCUSDT-PERP", 9)
    liquidity = BackgroundLiquidity(grid, sink, levels=50)
    state: dict[str, Any] = {"diffs": 0, "equal": 0, "equal_sizes": 0, "bought": 0}

    def on_book(local, changes, record) -> None:
        if record.event_ms * 10**6 > venue.time:
            liquidity.observe(venue.submit(AdvanceTime(record.event_ms * 10**6)))
        if isinstance(record, Snapshot):
            bid, _, ask, _ = local.top()
            venue.submit(SetIndexPrice("BTCUSDT-PERP", (bid + ask) // 2 // TO_TICK))
        liquidity.on_book(local, changes, record)
        state["diffs"] += 1
        if state["diffs"] == 300:  # the trader lifts 2 BTC of offers
            events = venue.submit(PlaceOrder(5, "BTCUSDT-PERP", Side.BUY, None, 2_000,
                                             TimeInForce.IOC))
            liquidity.observe(events)
            state["bought"] = sum(e.qty for e in events if e.kind == "fill")
        bid, bid_qty, ask, ask_qty = local.top()
        market = venue.market("BTCUSDT-PERP")
        state["equal"] += (market.best_bid, market.best_ask) == (bid // TO_TICK, ask // TO_TICK)
        bids, asks = venue.book("BTCUSDT-PERP").depth(1)
        state["equal_sizes"] += (bids[0][1], asks[0][1]) == (bid_qty // 10**5, ask_qty // 10**5)
        if state["diffs"] == 300:
            state["ask_after_trade"] = (asks[0], (ask // TO_TICK, ask_qty // 10**5))

    # Act
    replay(sample, on_book=on_book)

    # Assert: the trader's fills came out of background orders, which the next level changes
    # restored; the venue's touch is the recording's everywhere except right after the trade
    venue.check_invariants()
    assert state["bought"] == 2_000
    assert venue.account(5).positions["BTCUSDT-PERP"].size == 2_000
    assert liquidity.stats.fills_observed == 1
    assert sink.rejections == {} and liquidity.stats.refused == 0
    assert state["diffs"] == 1_145
    # the trade took 2 BTC out of the best offer (8.027 BTC at 61,809.6); that is the one
    # state whose touch size differs from the recording, until the level's next change
    assert state["ask_after_trade"] == ((618_096, 6_027), (618_096, 8_027))
    assert state["equal"] == state["diffs"] and state["equal_sizes"] == state["diffs"] - 1
    bids, asks = venue.book("BTCUSDT-PERP").depth(60)
    assert (bids, asks) == (liquidity.target(Side.BUY, 50), liquidity.target(Side.SELL, 50))
    assert len(venue.open_orders(9)) == 100
