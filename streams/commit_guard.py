"""Self-healing for faust-streaming's acked-offset bookkeeping after table recovery (0.15.3).

After a restart with a changelog-backed table, records fetched before table recovery finished are
delivered twice (once before the recovery seek, once after). faust's per-partition list of acked
offsets then keeps stale entries below the committed offset and duplicates; its commit logic takes
only the first run of consecutive numbers, so the committed offset crawls forward by one per commit
interval instead of jumping to the end. Related upstream reports: faust-streaming issues #596 (open)
and #606. Each check (1) drops acked offsets that are already committed and duplicates, which only
removes bookkeeping faust no longer needs, and (2) if the next-to-commit record stays unacked while
later ones are acked for longer than any batch takes, seeks that partition back so it is read again.
Re-reading is safe: raw tables and profiles are idempotent by event_id.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from faust.transport.consumer import ack_lock

log = logging.getLogger(__name__)

STALL_SECONDS = 8.0
"""A batch takes well under a second; an unacked head older than this is not an in-flight batch."""


def tidy(acked: list[int], committed: int | None) -> list[int]:
    """Acked offsets that still matter: at or past the committed offset, each once, sorted."""
    return sorted({o for o in acked if committed is None or o >= committed})


def holes(acked: dict[Any, list[int]], committed: dict[Any, int | None]) -> dict[Any, int]:
    """Partitions whose committed offset (next to read) is unacked while later offsets are acked."""
    out = {}
    for tp, offsets in acked.items():
        head = committed.get(tp)
        if offsets and head is not None and min(offsets) > head:
            out[tp] = head
    return out


def disable_gap_filling() -> None:
    """Stop faust from treating jumps in fetched offsets as acked "gaps".

    faust fills gaps so that compacted topics (where offsets really jump) can commit. Our inbound
    topics are never compacted, so their offsets are contiguous and a jump only ever comes from faust's
    own recovery race: a record fetched before the recovery seek arrives after it, faust marks the
    records in between as acked, commits past them and drops them when they are fetched again. That lost
    events after a restart. Without gap filling those records stay unacked, and the guard below re-reads
    them. Idempotent.
    """
    from faust.transport.consumer import Consumer

    async def _no_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        log.info("offsets %s..%s of %s skipped by the fetcher; they will be read again", offset_from, offset_to, tp)

    Consumer._add_gap = _no_gap  # type: ignore[method-assign]


class CommitGuard:
    def __init__(self, stall_seconds: float = STALL_SECONDS) -> None:
        self.stall_seconds = stall_seconds
        self.first_seen: dict[Any, tuple[int, float]] = {}
        self.tidied = 0
        self.reseeks = 0

    async def check(self, consumer: Any) -> None:
        # faust internals (see module doc): _acked, _acked_index, _committed_offset.
        with ack_lock:
            for tp, offsets in consumer._acked.items():
                clean = tidy(offsets, consumer._committed_offset.get(tp))
                if clean != offsets:
                    offsets[:] = clean
                    consumer._acked_index[tp] = set(clean)
                    self.tidied += 1
            found = holes(consumer._acked, consumer._committed_offset)
        now = time.monotonic()
        self.first_seen = {tp: self.first_seen.get(tp, (off, now)) for tp, off in found.items()}
        for tp, (offset, since) in list(self.first_seen.items()):
            if found.get(tp) == offset and now - since >= self.stall_seconds:
                log.warning("offset %s of %s never acked after recovery; reading again from it", offset, tp)
                await consumer.seek(tp, offset)
                self.reseeks += 1
                del self.first_seen[tp]
