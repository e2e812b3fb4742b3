"""The worker's event-time clock and its index of client deadlines. Pure (the wall clock is passed in).

The clock is a low watermark of event time over the inbound partitions (see `EventClock`). When the
stream goes quiet, it moves on with the wall clock, so that a deadline (a client's cadence silence, a
complaint's SLA due time) passes even if no further event ever arrives.
`Deadlines` maps each client to the event time of its next check; `due(now)` pops the passed ones.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping


class EventClock:
    """A low watermark over the partitions the worker reads.

    Each inbound partition has its own event-time progress (the largest `occurred_at` processed from
    it). The clock is the minimum progress over the partitions that are *live*: those with unread
    records (lagging) and those that delivered an event within the last `idle_seconds` of wall time.
    A client's deadline must not fire while that client's orders wait unread, or are about to arrive,
    on a partition that is behind the others: on a replay or a catch-up one topic is easily a day of
    event time ahead of another after a few milliseconds. A lagging partition with no progress known
    yet holds the clock where it is. A partition that went quiet stops holding the clock back; when all
    are quiet, the clock is the maximum progress and then moves on with the wall clock.
    """

    def __init__(self, idle_seconds: float, wall: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.wall = wall
        self.now: int | None = None
        self.progress: dict[Hashable, int] = {}
        self._seen: dict[Hashable, float] = {}
        self._last_event_wall = self._synced_wall = wall()

    def observe(self, partition: Hashable, event_time: int) -> None:
        """An event processed from `partition`."""
        self._last_event_wall = self._synced_wall = self._seen[partition] = self.wall()
        if event_time > self.progress.get(partition, event_time - 1):
            self.progress[partition] = event_time

    def settle(self, lagging: Collection[Hashable]) -> int | None:
        """Advance to the low watermark given the partitions that still have unread records."""
        if not self.progress:
            return self.now
        if any(p not in self.progress for p in lagging):
            return self.now  # a partition we know nothing about is behind: wait for it
        wall = self.wall()
        live = set(lagging) | {p for p, seen in self._seen.items() if wall - seen < self.idle_seconds}
        candidate = min(self.progress[p] for p in live) if live else max(self.progress.values())
        if self.now is None or candidate > self.now:
            self.now = candidate
        return self.now

    def tick(self, lagging: Collection[Hashable]) -> int | None:
        """Settle, then move on with the wall clock if nothing lags and the stream has been idle."""
        self.settle(lagging)
        if self.now is None or lagging:
            return self.now
        wall = self.wall()
        if wall - self._last_event_wall >= self.idle_seconds:
            step = int(wall - self._synced_wall)  # every idle wall second since the last sync, once
            self.now += step
            self._synced_wall += step
        return self.now


class Deadlines:
    """client_id -> due event time, with a heap for popping the passed ones in order."""

    def __init__(self) -> None:
        self.due_at: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self.stale = True
        """True until built from the risk table (at start and after every rebalance)."""

    def update(self, deadlines: Mapping[str, int | None]) -> None:
        for client_id, t in deadlines.items():
            if t is None:
                self.due_at.pop(client_id, None)
            else:
                self.due_at[client_id] = t
                heapq.heappush(self._heap, (t, client_id))

    def rebuild(self, entries: Iterable[tuple[str, int | None]]) -> None:
        self.due_at.clear()
        self._heap.clear()
        self.update(dict(entries))
        self.stale = False

    def due(self, now: int) -> list[str]:
        """Clients whose deadline is at or before `now`, each once, removed from the index."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            t, client_id = heapq.heappop(self._heap)
            if self.due_at.get(client_id) == t:  # skip entries superseded by a later update
                del self.due_at[client_id]
                out.append(client_id)
        return out

    def __len__(self) -> int:
        return len(self.due_at)
