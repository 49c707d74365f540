"""Trading bots built on the client library (docs/bots.md): a market maker, the leveraged
retail "ant" and a momentum taker. ``BOTS`` maps the names ``gaemi bot`` takes to the classes.

Each bot is a class with a parameters dataclass (``Bot.Params``) and an async
``run(client, *, stop_event=None, duration=None)`` over a logged-on
``gaemi.clients.live.client.Client``.
"""

from __future__ import annotations

from gaemi.clients.live.bots.ant import Ant, AntParams
from gaemi.clients.live.bots.base import Bot, BotParams, BotStats
from gaemi.clients.live.bots.market_maker import MarketMaker, MarketMakerParams
from gaemi.clients.live.bots.momentum import Momentum, MomentumParams

__all__ = ["BOTS", "Ant", "AntParams", "Bot", "BotParams", "BotStats", "MarketMaker",
           "MarketMakerParams", "Momentum", "MomentumParams"]

BOTS: dict[str, type[Bot]] = {
    "market-maker": MarketMaker,
    "ant": Ant,
    "momentum": Momentum,
}
