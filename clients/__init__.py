"""Gaemi clients package (see DESIGN.md)."""
