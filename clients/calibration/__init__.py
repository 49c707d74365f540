"""Calibration targets derived from real data, shipped as small tables with their provenance
(``targets``; the tables and their README in ``data/targets/``)."""
