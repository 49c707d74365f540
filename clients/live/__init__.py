"""Clients of a running server: the asyncio wire client (``client``), the local order book it
keeps (``book``), the bots, and the index feed. Nothing here imports the venue: these speak
only the wire (docs/protocol.md)."""
