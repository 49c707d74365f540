"""Every parameter of a retail-leverage scenario, with its default and where the default comes
from (docs/scenarios.md has the same table with the story).

The defaults ARE the default scenario, ``ants-skhynix``: SK Hynix's real fall of 2026-07-28 on
SKHYNIX-PERP. A TOML scenario (clients/sim/scenario/loader.py) overrides some of them. Sources:
"§n" is a section of the project's reference notes on perp mechanics (not shipped); "data:" is a
data set's README (clients/marketdata/data/prices, or a shared data set named by its folder);
"design" marks a choice of this prototype with no outside anchor, stated as such.

Units are the ones people use (USD, percent, basis points, seconds); the driver converts them
to the venue's integers (ticks, lots, micro-dollars, ppb, nanoseconds) once, at the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date

from gaemi.risk.calendar import ZONES

__all__ = [
    "ArbParams", "CohortParams", "EtfParams", "EtfProductParams", "MarginLoanParams",
    "MarketMakerParams", "MarketParams", "NoiseParams", "PathParams", "RunParams", "Scenario",
    "ShockParams", "TierParams", "REGIMES", "SHOCK_KINDS",
]

SHOCK_KINDS = ("gap", "crash", "oracle_freeze", "mm_withdrawal")
# how the retail cohorts lever up: "perp" (the venue's margin and liquidation engine) or
# "margin-loan" (a Korean brokerage margin account on the stock; clients/sim/scenario/broker.py)
REGIMES = ("perp", "margin-loan")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _fraction(value: float) -> bool:
    return 0.0 <= value <= 1.0


@dataclass(frozen=True, slots=True)
class TierParams:
    """One margin tier, in people's units (risk.MarginTier in integers)."""

    max_notional_usd: int | None = None  # inclusive upper bound; None: unbounded (last tier)
    max_leverage: int = 20
    mmr_pct: float = 2.5  # maintenance margin rate, percent of the notional

    def __post_init__(self) -> None:
        _check(self.max_notional_usd is None or self.max_notional_usd > 0,
               "max_notional_usd is positive")
        _check(1 <= self.max_leverage <= 1000, "max_leverage in 1..1000")
        _check(0 < self.mmr_pct <= 100 / self.max_leverage,
               "0 < mmr_pct <= 100 / max_leverage (maintenance never above initial)")


@dataclass(frozen=True, slots=True)
class MarketParams:
    """The perp the scenario runs on: a preset of risk/markets.py, optionally changed."""

    # the default demo market (docs/markets.md, "SKHYNIX-PERP")
    symbol: str = "SKHYNIX-PERP"
    # KRW per USD for the KRW names: docs/markets.md's illustrative 1,440
    usdkrw: float = 1440.0
    # margin tiers replacing the preset's (empty: the preset's KRW/US tiers, docs/markets.md)
    tiers: tuple[TierParams, ...] = ()
    # other MarketSpec fields by name, in the spec's own integer units (docs/markets.md,
    # "Every field of the four presets"); e.g. daily_limit_ppb = 300_000_000 for KRX's ±30%
    overrides: tuple[tuple[str, int | str | bool | None], ...] = ()

    def __post_init__(self) -> None:
        _check(self.usdkrw > 0, "usdkrw is positive")


@dataclass(frozen=True, slots=True)
class PathParams:
    """The index path: the real daily series, intraday paths generated around it."""

    # the daily series (clients/marketdata/data/prices); "" picks the market's underlying
    series: str = ""
    # the simulated trading days, inclusive: a day of positioning, then SK Hynix's fall of
    # Tuesday 2026-07-28 (open -8.5%, close -14.6% at the day's low; data: prices/README.md)
    first_day: str = "2026-07-27"
    last_day: str = "2026-07-28"
    # seconds simulated before each session opens (the perp trades, the index is frozen at the
    # previous close, so the open is a gap) and after it closes: design. 6,300 s after KRX's
    # 15:30 close is 17:15 KST, a quarter of an hour past HKEX's close, where the HK-listed 2x
    # product hedges (EtfProductParams)
    pre_open_s: int = 1800
    post_close_s: int = 6300
    # the clock: one AdvanceTime per step (Binance and OKX sample liquidations at 1 s, §7.7)
    step_s: int = 1
    # the oracle publishes the index every n seconds (design; HIP-3's floor is 2.5 s, §9.2)
    oracle_step_s: int = 1
    # multiplies the intraday volatility estimated from each day's high and low (Parkinson)
    vol_scale: float = 1.0

    def __post_init__(self) -> None:
        for name in ("first_day", "last_day"):
            try:
                date.fromisoformat(getattr(self, name))
            except ValueError:
                raise ValueError(f"{name}: a date YYYY-MM-DD") from None
        _check(self.first_day <= self.last_day, "first_day is not after last_day")
        _check(self.pre_open_s >= 0 and self.post_close_s >= 0, "pre/post windows >= 0")
        _check(self.step_s >= 1 and self.oracle_step_s >= 1, "steps are whole seconds >= 1")
        _check(self.vol_scale >= 0, "vol_scale >= 0")


@dataclass(frozen=True, slots=True)
class ShockParams:
    """A shock injected into the path or the market (pre-mortem shocks, §13.2 item 7).

    ``gap``: the day's open moves by ``pct`` more than the real open (the path still ends on
    the real close). ``crash``: the index falls ``pct`` over ``duration_s`` from ``at``, then
    recovers linearly over ``recovery_s`` (0: until the close, so the close stays real).
    ``oracle_freeze``: the oracle publishes nothing for ``duration_s`` from ``at``.
    ``mm_withdrawal``: the market makers pull every quote for ``duration_s`` from ``at``."""

    kind: str = "gap"
    day: str = ""  # a simulated trading day, YYYY-MM-DD
    at: str = ""  # local time of the underlying's exchange, HH:MM or HH:MM:SS; gap: the open
    pct: float = 0.0
    duration_s: int = 0
    recovery_s: int = 0

    def __post_init__(self) -> None:
        _check(self.kind in SHOCK_KINDS, f"kind: one of {', '.join(SHOCK_KINDS)}")
        try:
            date.fromisoformat(self.day)
        except ValueError:
            raise ValueError("day: a date YYYY-MM-DD") from None
        if self.kind == "gap":
            _check(not self.at and not self.duration_s, "a gap acts at the open: no at, "
                   "no duration_s")
        else:
            _check(bool(self.at), f"{self.kind}: at (HH:MM[:SS]) is required")
            _check(self.duration_s > 0, f"{self.kind}: duration_s > 0")
        if self.kind in ("gap", "crash"):
            _check(-90 < self.pct < 1000 and self.pct != 0, f"{self.kind}: pct in (-90, 1000), "
                   "not 0")
        else:
            _check(self.pct == 0, f"{self.kind}: takes no pct")
        _check(self.recovery_s >= 0, "recovery_s >= 0")
        _check(self.kind == "crash" or self.recovery_s == 0, "recovery_s: crash only")
        if self.at:
            _clock_seconds(self.at, "at")

    @property
    def at_seconds(self) -> int:
        """``at`` as seconds after local midnight."""
        return _clock_seconds(self.at, "at")


@dataclass(frozen=True, slots=True)
class CohortParams:
    """A retail cohort: the long "ants" or the contrarian inverse (short) cohort.

    Every account deposits once, when it arrives, and never adds margin (no top-ups; in the
    margin-loan regime a margin call may bring one, ``MarginLoanParams.top_up_share``). It
    picks a leverage, opens a position with part of its buying power (cross margin, market
    order), and then: closes at its take-profit or when its holding time runs out (turnover),
    buys more on a dip (sells more on a rise, for shorts) through resting limit orders if it
    is a dip buyer, or is liquidated. A closed account may come back."""

    side: str = "long"  # "long" or "short"
    # a few thousand ants is plenty (issue); sized for the demo's 60 s budget: design
    count: int = 2000
    # lognormal deposit: median KRW 10M / 1,440, the deposit KRX requires for its single-stock
    # 2x products (§6.2); the spread sigma is a design choice
    deposit_median_usd: float = 6944.0
    deposit_sigma: float = 0.8
    # chosen leverage -> weight: heavy in 2x/3x (the 2x ETPs are Korean retail's leverage
    # channel, §6.2; "2x/3x ants", §13.1 F.4) with a tail to the 20x the Korean names allow
    # (§6.1 [S]); the weights are a design choice
    leverage: tuple[tuple[int, float], ...] = ((2, 0.35), (3, 0.30), (5, 0.15), (10, 0.12),
                                               (20, 0.08))
    # share of the buying power (balance x leverage) the opening order uses: design
    margin_use_min: float = 0.5
    margin_use_max: float = 0.9
    # arrivals: uniform over the simulated session time; this share arrives on the last day
    # (the buy-the-dip newcomers): design
    last_day_share: float = 0.2
    # turnover: holding time ~ exponential with this mean, in session seconds (two KRX
    # sessions): design
    hold_mean_s: float = 46_800.0
    # close the whole position when the mark is this far in the money: design
    take_profit_pct: float = 8.0
    # dip buying (the "dip buying"): this share of the cohort rests
    # a limit order beyond its last fill (below, for a long) by a distance drawn uniformly
    # from [dip_pct_min, dip_pct_max] per account, sized to dip_use of what is available,
    # and the next one when it fills, at most max_dips times: design
    dip_share: float = 0.5
    dip_pct_min: float = 2.0
    dip_pct_max: float = 10.0
    dip_use: float = 0.8
    max_dips: int = 2
    # after closing (not after a liquidation: the money is gone) it comes back with this
    # probability, after a pause ~ exponential with mean hold_mean_s / 2: design
    reentry_prob: float = 0.3

    def __post_init__(self) -> None:
        _check(self.side in ("long", "short"), "side: long or short")
        _check(self.count >= 0, "count >= 0")
        _check(self.deposit_median_usd >= 1 and self.deposit_sigma >= 0,
               "deposit_median_usd >= 1, deposit_sigma >= 0")
        _check(bool(self.leverage) or self.count == 0, "leverage: at least one choice")
        _check(all(isinstance(lev, int) and 1 <= lev <= 1000 and w >= 0
                   for lev, w in self.leverage), "leverage: {L = weight} with L in 1..1000, "
               "weight >= 0")
        _check(not self.leverage or sum(w for _, w in self.leverage) > 0,
               "leverage: the weights sum to more than 0")
        _check(0 < self.margin_use_min <= self.margin_use_max <= 1,
               "0 < margin_use_min <= margin_use_max <= 1")
        for name in ("last_day_share", "dip_share", "dip_use", "reentry_prob"):
            _check(_fraction(getattr(self, name)), f"{name} in [0, 1]")
        _check(self.hold_mean_s > 0, "hold_mean_s > 0")
        _check(self.take_profit_pct > 0, "take_profit_pct > 0")
        _check(0 < self.dip_pct_min <= self.dip_pct_max < 100,
               "0 < dip_pct_min <= dip_pct_max < 100")
        _check(self.max_dips >= 0, "max_dips >= 0")


def _ants() -> CohortParams:
    return CohortParams()


def _inverse() -> CohortParams:
    return CohortParams(
        side="short",
        # design: a fifth of the ants' head count
        count=400,
        # the inverse products Korean retail holds are -1x and -2x (KRX single-stock +-2x,
        # CSOP Samsung +-2x, §6.2); a few go to 3x: design
        leverage=((1, 0.35), (2, 0.50), (3, 0.15)),
        margin_use_min=0.5, margin_use_max=0.9, last_day_share=0.2,
        # contrarians cover after a fall and add on a rise: design
        take_profit_pct=6.0, dip_share=0.5, dip_pct_min=2.0, dip_pct_max=10.0, dip_use=0.8,
        max_dips=2,
        reentry_prob=0.3,
    )


@dataclass(frozen=True, slots=True)
class MarketMakerParams:
    """Market makers: post-only ladders around the underlying's price, inventory limits, and
    the stress behaviour of §7.1 (books "looked empty near mid" on 10/10; "market makers
    withdrew, so book liquidations had no depth"). All values are design choices."""

    count: int = 3
    capital_usd: float = 3_000_000.0
    levels: int = 4  # per side
    level_usd: float = 25_000.0  # size of one level
    half_spread_bps: float = 5.0  # first level's distance from the reference
    level_step_bps: float = 10.0  # between levels
    # no more quotes on the side that would grow |inventory| beyond this; quotes shift by
    # up to skew_bps (at the limit) to lean against the inventory
    inventory_limit_usd: float = 600_000.0
    skew_bps: float = 25.0
    requote_s: int = 15  # requote at least this often
    requote_bps: float = 8.0  # and whenever the reference moved this much
    # stress: the reference's range over the window (bps of the price), or the notional
    # liquidated on the venue in the window (the public liquidation channel)
    stress_window_s: int = 60
    widen_at_bps: float = 150.0
    widen_at_liquidated_usd: float = 250_000.0
    widen_factor: float = 3.0  # spreads and steps x this under stress
    # under stress the reference moves this share of the way from the underlying to the
    # perp's last trade (0: the underlying only): makers stop trusting a price their own
    # market is trading away from
    stress_anchor_last: float = 1.0
    stress_size_factor: float = 0.5  # level sizes x this under stress
    withdraw_at_bps: float = 1000.0
    withdraw_at_liquidated_usd: float = 2_000_000.0
    withdraw_s: int = 30  # pulled quotes stay off at least this long

    def __post_init__(self) -> None:
        _check(self.count >= 0 and self.levels >= 1, "count >= 0, levels >= 1")
        _check(self.capital_usd > 0 and self.level_usd > 0 and self.inventory_limit_usd > 0,
               "capital_usd, level_usd, inventory_limit_usd > 0")
        _check(self.half_spread_bps > 0 and self.level_step_bps > 0,
               "half_spread_bps, level_step_bps > 0")
        _check(self.requote_s >= 1 and self.stress_window_s >= 1 and self.withdraw_s >= 0,
               "requote_s, stress_window_s >= 1; withdraw_s >= 0")
        _check(self.widen_factor >= 1 and 0 < self.stress_size_factor <= 1,
               "widen_factor >= 1, 0 < stress_size_factor <= 1")
        _check(_fraction(self.stress_anchor_last), "stress_anchor_last in [0, 1]")
        _check(self.widen_at_bps <= self.withdraw_at_bps, "widen_at_bps <= withdraw_at_bps")


@dataclass(frozen=True, slots=True)
class ArbParams:
    """Basis traders (cash-and-carry): they take the other side of the crowded long when the
    perp trades rich to the underlying (positive funding, §6.2's SKHX funding before
    2026-06-23 [S]) and buy back when it trades cheap. Resting quotes at the underlying +-
    edge_bps, at most clip_usd a side per refresh, within max_position_usd. Design values."""

    count: int = 2
    capital_usd: float = 25_000_000.0
    leverage: int = 3
    edge_bps: float = 30.0
    clip_usd: float = 300_000.0
    requote_s: int = 20
    max_position_usd: float = 60_000_000.0
    # they pull their quotes when the reference's range over the makers' stress window
    # exceeds this, or when the notional liquidated in that window does: design
    withdraw_at_bps: float = 600.0
    withdraw_at_liquidated_usd: float = 300_000.0

    def __post_init__(self) -> None:
        _check(self.count >= 0 and self.capital_usd > 0 and self.leverage >= 1,
               "count >= 0, capital_usd > 0, leverage >= 1")
        _check(self.edge_bps > 0 and self.clip_usd > 0 and self.max_position_usd > 0,
               "edge_bps, clip_usd, max_position_usd > 0")
        _check(self.requote_s >= 1 and self.withdraw_at_bps > 0,
               "requote_s >= 1, withdraw_at_bps > 0")


def _clock_seconds(text: str, key: str) -> int:
    """``HH:MM`` or ``HH:MM:SS`` as seconds after midnight (ValueError naming ``key``)."""
    parts = text.split(":")
    ok = len(parts) in (2, 3) and all(p.isdigit() and len(p) == 2 for p in parts)
    _check(ok and int(parts[0]) < 24 and all(int(p) < 60 for p in parts[1:]),
           f"{key}: HH:MM or HH:MM:SS")
    h, m, *sec = (int(p) for p in parts)
    return h * 3600 + m * 60 + (sec[0] if sec else 0)


@dataclass(frozen=True, slots=True)
class EtfProductParams:
    """One daily-rebalanced leveraged (L >= 2) or inverse (L <= -1) product on the underlying.

    Its hedge (§8 Cheng & Madhavan; §9.6): dH = AUM x (L^2 - L) x r, r the underlying's return
    since the previous close, traded on the perp in equal slices over the last ``window_s``
    before the close of the market where the product trades (``zone``, ``close``: local time).
    L^2 - L is 2 for 2x and -1x, 6 for 3x and -2x: inverse products sell into a fall too."""

    name: str = "CSOP 2x (HKEX)"
    leverage: int = 2
    # AUM = aum_ratio x the ants' total deposits (the cohorts are a scale model of Korean
    # retail; docs/scenarios.md says where each product's ratio comes from, or that it is
    # assumed)
    aum_ratio: float = 0.24
    zone: str = "Asia/Hong_Kong"
    close: str = "16:00"
    window_s: int = 600
    slice_s: int = 10

    def __post_init__(self) -> None:
        _check(bool(self.name), "name is required")
        _check(self.leverage >= 2 or self.leverage <= -1,
               "leverage: >= 2 or <= -1 (0 and 1 never rebalance)")
        _check(self.aum_ratio >= 0, "aum_ratio >= 0")
        _check(self.zone in ZONES, f"zone: one of {', '.join(ZONES)}")
        _clock_seconds(self.close, "close")
        _check(self.window_s >= 1 and 1 <= self.slice_s <= self.window_s,
               "window_s >= 1, 1 <= slice_s <= window_s")
        _check(self.window_s <= self.close_seconds, "window_s: starts after local midnight")

    @property
    def close_seconds(self) -> int:
        """``close`` as seconds after local midnight."""
        return _clock_seconds(self.close, "close")


def _etf_products() -> tuple[EtfProductParams, ...]:
    return (
        # CSOP's SK Hynix 2x on HKEX, $5.38B on 2026-05-05, the world's largest single-stock
        # leveraged ETP (§6.2). AUM ratio: $5.38B x 1,440 = 7.75 trillion KRW over the KOSPI
        # margin-credit balance, 32.71 trillion KRW on 2025-05-22 (data: kospi-margin-credit):
        # retail's ETF leverage next to its margin leverage. HKEX closes 16:00 HKT = 17:00
        # KST, after KRX's 15:30 close (§6.3, §9.6): the hedge lands on the perp then
        EtfProductParams(),
        # KRX's single-stock -2x on SK Hynix (listed 2026-05-27, §6.2), hedged in the last ten
        # minutes before KRX's close. Its AUM is assumed (none published in our sources):
        # an eighth of the HKEX product's; with L^2 - L = 6 its hedge is 3/8 of the 2x one's
        EtfProductParams(name="KRX -2x", leverage=-2, aum_ratio=0.03,
                         zone="Asia/Seoul", close="15:30"),
    )


@dataclass(frozen=True, slots=True)
class EtfParams:
    """The leveraged and inverse products on the underlying: each rebalances daily at the
    close of its own market (EtfProductParams), through its own account on the perp."""

    enabled: bool = True
    products: tuple[EtfProductParams, ...] = field(default_factory=_etf_products)
    # multiplies every product's AUM (a sweep's one knob over the ETF flow): design
    aum_scale: float = 1.0

    def __post_init__(self) -> None:
        _check(self.aum_scale >= 0, "aum_scale >= 0")
        names = [p.name for p in self.products]
        _check(len(set(names)) == len(names), "products: every name is different")


@dataclass(frozen=True, slots=True)
class NoiseParams:
    """Background traders: small market orders of random side around the clock, keeping their
    position within max_position_usd. Design values."""

    count: int = 10
    capital_usd: float = 200_000.0
    leverage: int = 3
    orders_per_hour: float = 40.0  # each
    size_median_usd: float = 3_000.0  # lognormal
    size_sigma: float = 1.0
    max_position_usd: float = 150_000.0

    def __post_init__(self) -> None:
        _check(self.count >= 0 and self.capital_usd > 0 and self.leverage >= 1,
               "count >= 0, capital_usd > 0, leverage >= 1")
        _check(self.orders_per_hour >= 0 and self.size_median_usd > 0 and self.size_sigma >= 0,
               "orders_per_hour >= 0, size_median_usd > 0, size_sigma >= 0")
        _check(self.max_position_usd > 0, "max_position_usd > 0")


@dataclass(frozen=True, slots=True)
class MarginLoanParams:
    """The Korean brokerage margin account (신용융자) of the ``margin-loan`` regime: the
    retail cohorts hold the stock itself, bought partly with a broker's loan, under the
    broker's rules instead of the venue's liquidation engine (docs/scenarios.md, "The
    margin-loan regime"). Unused in the ``perp`` regime."""

    # 보증금률: the share of a purchase paid with the account's own money; 40% allows 2.5x.
    # Brokers set 40-100% per stock by grade; 40% (the lowest, for a large cap): assumed
    initial_margin_pct: float = 40.0
    # 담보유지비율: (holdings + cash) / loan must stay at or above this at the close; KRX
    # brokers commonly use 140% (issue)
    maintenance_pct: float = 140.0
    # the short side (대주, stock lent to a retail account): (cash + proceeds) / the lent
    # stock's value. A short opened at 2.5x starts at 140%, so the long's ratio would call it
    # at once; 120% is the retail short-sale collateral ratio Korea used before 2024: assumed
    short_maintenance_pct: float = 120.0
    # share of margin calls the ant meets by depositing the shortfall the next session's open:
    # design (the KOSPI credit response is the target that can fix it)
    top_up_share: float = 0.5
    # the forced sale (반대매매) runs at the open of the n-th session after the call's close:
    # a call at Tuesday's close is sold at Thursday's open ("the next-but-one session", issue)
    forced_sale_sessions: int = 2
    # KRX's daily price limit, percent of the previous close (the stock market's own rule)
    daily_limit_pct: float = 30.0

    def __post_init__(self) -> None:
        _check(0 < self.initial_margin_pct <= 100, "initial_margin_pct in (0, 100]")
        _check(100 < self.maintenance_pct <= 1000, "maintenance_pct in (100, 1000]")
        _check(100 < self.short_maintenance_pct <= 1000, "short_maintenance_pct in (100, 1000]")
        _check(_fraction(self.top_up_share), "top_up_share in [0, 1]")
        _check(self.forced_sale_sessions >= 1, "forced_sale_sessions >= 1")
        _check(0 < self.daily_limit_pct < 100, "daily_limit_pct in (0, 100)")

    @property
    def max_leverage(self) -> float:
        """Holdings per unit of the account's own money at most: 1 / the initial margin."""
        return 100.0 / self.initial_margin_pct


@dataclass(frozen=True, slots=True)
class RunParams:
    """How the run is observed."""

    sample_s: int = 1  # a Sample row every n simulated seconds (clients/sim/cascade/record.py)
    # Venue.check_invariants every n simulated seconds, and at the end
    check_every_s: int = 1800

    def __post_init__(self) -> None:
        _check(self.sample_s >= 1 and self.check_every_s >= 1,
               "sample_s, check_every_s >= 1")


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str = "ants-skhynix"
    description: str = ""
    seed: int = 20260728  # the crash day: any integer; the same seed gives the same state hash
    # how the ants and the inverse cohort lever up (REGIMES): the perp, or a broker's margin
    # loan on the stock (the same agents, seeds and index path)
    regime: str = "perp"
    market: MarketParams = field(default_factory=MarketParams)
    path: PathParams = field(default_factory=PathParams)
    shocks: tuple[ShockParams, ...] = ()
    ants: CohortParams = field(default_factory=_ants)
    inverse: CohortParams = field(default_factory=_inverse)
    market_makers: MarketMakerParams = field(default_factory=MarketMakerParams)
    arbitrageurs: ArbParams = field(default_factory=ArbParams)
    etf: EtfParams = field(default_factory=EtfParams)
    noise: NoiseParams = field(default_factory=NoiseParams)
    margin_loan: MarginLoanParams = field(default_factory=MarginLoanParams)
    run: RunParams = field(default_factory=RunParams)

    def __post_init__(self) -> None:
        _check(bool(self.name), "name is required")
        _check(self.seed >= 0, "seed >= 0")
        _check(self.regime in REGIMES, f"regime: one of {', '.join(REGIMES)}")
        _check(self.ants.side == "long", "ants: side is long (the inverse cohort is short)")
        _check(self.inverse.side == "short", "inverse: side is short")
        for shock in self.shocks:
            _check(self.path.first_day <= shock.day <= self.path.last_day,
                   f"shock on {shock.day}: outside the simulated days")


def field_names(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]
