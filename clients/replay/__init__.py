"""Replays of historical order flow through Gaemi's books (docs/replay.md)."""
