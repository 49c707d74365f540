"""Retail-leverage scenarios: the "ants" on a single-stock perp, driven in-process through
the wire messages a websocket client would send (docs/scenarios.md).

``load_scenario(preset_or_path)`` reads a TOML scenario (clients/sim/scenario/loader.py);
``run(scenario)`` runs it through the sans-I/O gateway ``Exchange`` and returns a ``RunRecord``
(clients/sim/cascade/record.py), the input of the cascade metrics and report.
"""

from __future__ import annotations

from gaemi.clients.sim.scenario.driver import run
from gaemi.clients.sim.scenario.loader import ScenarioError, load_scenario, preset_names
from gaemi.clients.sim.scenario.params import Scenario

__all__ = ["DEFAULT_PRESET", "Scenario", "ScenarioError", "load_scenario", "preset_names", "run"]

DEFAULT_PRESET = "ants-skhynix"
