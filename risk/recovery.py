"""Recovery of a venue and its snapshots: the public face of ``gaemi.risk.venue.persist``
(the file layout, the checks and the torn-tail rule are documented there and in
docs/reliability.md).

``recover(path)`` rebuilds the venue of a journal from its newest valid snapshot and the
journal after it, returns the notes journaled after that point (the gateway's session guards)
and reattaches the journal for appending; ``write_snapshot(venue, owner)`` writes one.
"""

from __future__ import annotations

import os

from gaemi.risk.venue import Venue, persist
from gaemi.risk.venue.persist import (
    KEEP,
    Recovered,
    SnapshotInvalid,
    TornTail,
    code_fingerprint,
    snapshot_paths,
    write_snapshot,
)

__all__ = ["KEEP", "Recovered", "SnapshotInvalid", "TornTail", "code_fingerprint", "recover",
           "snapshot_paths", "write_snapshot"]


def recover(path: str | os.PathLike[str], *, book: str = "auto",
            snapshots: bool = True) -> Recovered[Venue]:
    """The venue of the journal at ``path`` (``snapshots=False``: replayed from its header),
    appending to it again; see ``persist.recover``."""
    return persist.recover(path, venue_class=Venue, book=book, snapshots=snapshots)
