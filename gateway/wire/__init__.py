"""The wire protocol, free of I/O: codecs, message shapes and the session rules
(docs/protocol.md). Clients import this package too, so both ends speak one definition."""
