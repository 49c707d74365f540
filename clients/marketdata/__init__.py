"""Market data shared by the index feed and the simulator: the real daily prices of the
underlyings (``prices``; the files and their provenance in ``data/prices/``)."""
