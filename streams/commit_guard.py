"""Self-healing for faust-streaming's acked-offset bookkeeping after table recovery (0.15.3).

After a restart with a changelog-backed table, faust can hand the stream a record fetched before its
recovery seek after that seek (upstream faust-streaming issues #596 and #606). faust's fetch loop then
drops the re-fetched records below it as "already read", so a run of offsets is never delivered. Left
alone, faust (a) commits past such a run when it is one record long or when it fills it as a "gap",
which loses events, or (b) never commits that partition again, which stalls it. Three repairs:

- `disable_gap_filling`: our inbound topics are never compacted, so a jump in fetched offsets is never
  a real gap; never mark the skipped offsets as acked.
- `strict_commit_head`: commit only a run of acked offsets that starts exactly at the committed offset
  (faust 0.15.3 lets a run start one past it, skipping that record).
- `CommitGuard`: a timer that tidies stale bookkeeping and, when a partition has records beyond its
  committed offset yet has not committed for longer than any batch takes while the agent is idle, seeks
  it back to the committed offset so those records are delivered again.

Re-reading is safe: raw tables and profiles are idempotent by event_id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.transport.consumer import ack_lock

log = logging.getLogger(__name__)

STALL_SECONDS = 8.0
"""A batch takes well under a second; no commit for this long with records waiting is a stall."""


def tidy(acked: list[int], committed: int | None) -> list[int]:
    """Acked offsets that still matter: at or past the committed offset, each once, sorted."""
    return sorted({o for o in acked if committed is None or o >= committed})


def committable_run(acked: list[int], committed: int | None) -> list[int]:
    """The acked offsets that may be committed now: the consecutive run starting at `committed`.

    `committed` is Kafka's committed offset, the next record to process. With nothing committed yet
    the run starts at the lowest acked offset (faust's own rule; there was no seek to race with).
    """
    offsets = sorted(set(acked))
    if not offsets or (committed is not None and offsets[0] != committed):
        return []
    run = [offsets[0]]
    for o in offsets[1:]:
        if o != run[-1] + 1:
            break
        run.append(o)
    return run


@dataclass
class Progress:
    """When each partition's committed offset last moved (monotonic seconds)."""

    last: dict[Any, tuple[int | None, float]] = field(default_factory=dict)

    def observe(self, committed: Mapping[Any, int | None], now: float) -> None:
        """Record the current committed offsets; partitions no longer present are forgotten."""
        seen = {}
        for tp, off in committed.items():
            prev = self.last.get(tp)
            seen[tp] = prev if prev is not None and prev[0] == off else (off, now)
        self.last = seen

    def stalled(self, highwater: Mapping[Any, int | None], now: float, after: float) -> dict[Any, int]:
        """Partitions with records past their committed offset and no commit for `after` seconds.

        A partition never committed counts from offset 0: its first records can be lost to the same
        race, and seeking to 0 is safe (a log that starts later resets to its earliest offset)."""
        out = {}
        for tp, (off, since) in self.last.items():
            end = highwater.get(tp)
            start = off if off is not None else 0
            if end is not None and end > start and now - since >= after:
                out[tp] = start
        return out


def disable_gap_filling() -> None:
    """Stop faust from treating jumps in fetched offsets as acked "gaps" (see module doc). Idempotent."""
    from faust.transport.consumer import Consumer

    async def _no_gap(self: Consumer, tp: Any, offset_from: int, offset_to: int) -> None:
        log.info("offsets %s..%s of %s skipped by the fetcher; they will be read again", offset_from, offset_to, tp)

    Consumer._add_gap = _no_gap  # type: ignore[method-assign]


def strict_commit_head(topics: Collection[str]) -> None:
    """Replace faust's choice of the offset to commit for `topics` by `committable_run`. Idempotent."""
    from faust.transport.consumer import Consumer

    original = getattr(Consumer, "_clientpulse_original_new_offset", Consumer._new_offset)
    strict = frozenset(topics)

    def _new_offset(self: Consumer, tp: Any) -> int | None:
        if tp.topic not in strict:
            return original(self, tp)
        acked = self._acked[tp]
        run = committable_run(acked, self._committed_offset[tp])
        if not run:
            return None
        acked[:] = [o for o in acked if o > run[-1]]
        self._acked_index[tp].difference_update(run)
        return run[-1] + 1

    Consumer._clientpulse_original_new_offset = original  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset  # type: ignore[method-assign]


class CommitGuard:
    def __init__(self, topics: Collection[str], stall_seconds: float = STALL_SECONDS) -> None:
        self.topics = frozenset(topics)
        """The consumed topics to guard; never the table changelogs, which faust reads by itself."""
        self.stall_seconds = stall_seconds
        self.progress = Progress()
        self.tidied = 0
        self.reseeks = 0

    async def check(self, consumer: Any, idle: bool) -> None:
        """Tidy faust's bookkeeping; re-read stalled partitions when no batch is in flight."""
        # faust internals (see module doc): _acked, _acked_index, _committed_offset, _read_offset.
        assigned = {tp for tp in consumer.assignment() if tp.topic in self.topics}
        with ack_lock:
            for tp, offsets in consumer._acked.items():
                clean = tidy(offsets, consumer._committed_offset.get(tp))
                if clean != offsets:
                    offsets[:] = clean
                    consumer._acked_index[tp] = set(clean)
                    self.tidied += 1
        committed = {tp: consumer._committed_offset.get(tp) for tp in assigned}
        now = time.monotonic()
        self.progress.observe(committed, now)
        if not idle:
            return
        highwater = {tp: consumer.highwater(tp) for tp in assigned}
        for tp, offset in self.progress.stalled(highwater, now, self.stall_seconds).items():
            acked = consumer._acked.get(tp) or []
            log.warning(
                "%s stalled at committed offset %s (end %s, last read %s, %d acked beyond, first %s); "
                "reading again from the committed offset",
                tp,
                offset,
                highwater[tp],
                consumer._read_offset.get(tp),
                len(acked),
                acked[:3],
            )
            await consumer.seek(tp, offset)
            self.reseeks += 1
            self.progress.last[tp] = (offset, now)
