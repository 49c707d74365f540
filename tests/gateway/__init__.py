"""Tests of the websocket gateway (gateway/)."""
