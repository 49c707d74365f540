"""Gaemi's websocket gateway: the wire protocol (``gateway.wire``) and the server."""
