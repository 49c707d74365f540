"""Gaemi clients package (see docs/design.md)."""
