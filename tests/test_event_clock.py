"""The worker's event-time clock and its deadline index (streams.event_clock), with an injected wall clock."""

from __future__ import annotations

import random

from streams.event_clock import Deadlines, EventClock

IDLE = 5.0
E0 = 1_750_000_000  # an event time (epoch seconds)


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


P1, P2, P3 = ("clientpulse.orders", 0), ("clientpulse.orders", 1), ("clientpulse.complaints", 0)
NONE: frozenset = frozenset()
"""No partition lags."""


def clock_at(event_time: int = E0) -> tuple[EventClock, Wall]:
    wall = Wall()
    clock = EventClock(IDLE, wall)
    clock.observe(P1, event_time)
    assert clock.settle(NONE) == event_time
    return clock, wall


# ---------------------------------------------------------------- EventClock: event time


def test_the_clock_is_unset_until_an_event_is_seen() -> None:
    wall = Wall()
    clock = EventClock(IDLE, wall)
    wall.advance(10 * IDLE)
    assert clock.settle(NONE) is None and clock.tick(NONE) is None and clock.now is None
    assert clock.tick({P1}) is None


def test_live_partitions_hold_the_clock_at_the_slowest_and_quiet_ones_let_go() -> None:
    clock, wall = clock_at(E0)
    for partition, t in ((P1, E0 + 10), (P2, E0 - 100), (P1, E0 + 3), (P3, E0 + 50), (P2, E0 + 49)):
        clock.observe(partition, t)
        wall.advance(0.5)
    assert clock.progress == {P1: E0 + 10, P2: E0 + 49, P3: E0 + 50}
    # all three delivered within idle_seconds: the slowest (P1) may still bring events up to E0 + 10
    assert clock.settle(NONE) == E0 + 10
    wall.advance(IDLE)  # all quiet now: nothing holds the clock back
    assert clock.settle(NONE) == E0 + 50
    clock.observe(P1, E0 + 20)  # P1 live again, but the clock never goes back
    assert clock.settle(NONE) == E0 + 50
    assert clock.tick(NONE) == E0 + 50


def test_a_lagging_partition_holds_the_clock_at_its_progress() -> None:
    wall = Wall()
    clock = EventClock(IDLE, wall)
    clock.observe(P1, E0 + 1000)  # orders read far ahead ...
    clock.observe(P3, E0 + 10)  # ... complaints still catching up
    assert clock.settle({P3}) == E0 + 10
    clock.observe(P3, E0 + 400)
    assert clock.settle({P3}) == E0 + 400
    assert clock.settle({P1, P3}) == E0 + 400  # the minimum over what lags
    wall.advance(IDLE)
    assert clock.settle(NONE) == E0 + 1000  # caught up and quiet: the largest
    assert clock.settle({P3}) == E0 + 1000  # never back, even when a partition lags again


def test_a_lagging_partition_without_progress_holds_the_clock_where_it_is() -> None:
    clock = EventClock(IDLE, Wall())
    clock.observe(P1, E0 + 1000)
    assert clock.settle({P2}) is None  # nothing known of P2 yet: no time can be trusted
    assert clock.settle(NONE) == E0 + 1000  # P1 alone is live
    clock.observe(P1, E0 + 2000)
    assert clock.settle({P2}) == E0 + 1000


# ---------------------------------------------------------------- EventClock: the wall clock


def test_while_events_keep_arriving_the_wall_clock_is_ignored() -> None:
    clock, wall = clock_at(E0)
    for _ in range(100):
        wall.advance(IDLE - 0.5)  # always a little less than the idle time between batches
        assert clock.tick(NONE) == E0
        clock.observe(P1, E0)  # late or same-time events still count as activity
    assert clock.now == E0


def test_after_idle_seconds_the_clock_moves_on_with_the_wall_clock() -> None:
    clock, wall = clock_at(E0)
    wall.advance(IDLE - 0.001)
    assert clock.tick(NONE) == E0
    wall.advance(0.001)
    assert clock.tick(NONE) == E0 + int(IDLE)
    wall.advance(3 * IDLE)
    assert clock.tick(NONE) == E0 + 4 * int(IDLE)


def test_a_lagging_partition_stops_the_wall_clock_too() -> None:
    clock, wall = clock_at(E0)
    clock.observe(P3, E0 - 50)
    wall.advance(100 * IDLE)
    assert clock.tick({P3}) == E0  # the unread complaints may hold events before any deadline
    assert clock.tick(NONE) == E0 + int(100 * IDLE)  # caught up and quiet: the wall time counts


def test_wall_time_is_counted_without_drift() -> None:
    clock, wall = clock_at(E0)
    for _ in range(120):
        wall.advance(0.25)  # quarter seconds: exact in binary
        clock.tick(NONE)
    assert clock.now == E0 + 30  # 30 s of quiet wall time, 30 s of event time


def test_an_event_ends_the_idle_period() -> None:
    clock, wall = clock_at(E0)
    wall.advance(IDLE + 2)
    assert clock.tick(NONE) == E0 + int(IDLE + 2)
    clock.observe(P1, E0 + 1)  # an event older than the clock: no going back, but no longer idle
    assert clock.settle(NONE) == E0 + int(IDLE + 2)
    wall.advance(IDLE - 1)
    assert clock.tick(NONE) == E0 + int(IDLE + 2)
    wall.advance(1)
    assert clock.tick(NONE) == E0 + int(IDLE + 2) + int(IDLE)
    clock.observe(P2, E0 + 1000)  # a newer event takes over from the wall clock
    assert clock.tick(NONE) == E0 + 1000


def test_once_idle_every_wall_second_moves_the_clock() -> None:
    clock, wall = clock_at(E0)
    wall.advance(IDLE)
    assert clock.tick(NONE) == E0 + int(IDLE)
    for i in range(1, 4):
        wall.advance(1.0)
        assert clock.tick(NONE) == E0 + int(IDLE) + i


def test_the_default_wall_clock_is_monotonic_time() -> None:
    clock = EventClock(3600)
    clock.observe(P1, E0)
    assert clock.tick(NONE) == E0  # not idle for an hour within this test


# ---------------------------------------------------------------- Deadlines


def test_due_pops_each_passed_client_once_in_deadline_order() -> None:
    d = Deadlines()
    d.update({"a": 30, "b": 10, "c": 20, "d": 40})
    assert len(d) == 4
    assert d.due(5) == []
    assert d.due(20) == ["b", "c"]  # at or before now
    assert d.due(20) == []  # each once
    assert len(d) == 2 and d.due_at == {"a": 30, "d": 40}
    assert d.due(10**12) == ["a", "d"]
    assert len(d) == 0 and d.due(10**12) == []


def test_a_later_update_supersedes_the_earlier_deadline() -> None:
    d = Deadlines()
    d.update({"a": 10})
    d.update({"a": 50})  # postponed: the old heap entry must be skipped
    assert d.due(20) == []
    assert d.due(50) == ["a"]
    d.update({"b": 50})
    d.update({"b": 15})  # brought forward
    assert d.due(20) == ["b"]
    assert d.due(100) == []  # the superseded entry at 50 is not due any more


def test_none_removes_a_client() -> None:
    d = Deadlines()
    d.update({"a": 10, "b": 10})
    d.update({"a": None, "c": None})
    assert len(d) == 1 and d.due(100) == ["b"]


def test_the_same_deadline_twice_is_due_once() -> None:
    d = Deadlines()
    d.update({"a": 10})
    d.update({"a": 10})
    d.update({"a": 30})
    d.update({"a": 10})
    assert d.due(40) == ["a"]
    assert d.due(40) == [] and len(d) == 0


def test_a_client_is_due_again_after_a_new_deadline() -> None:
    d = Deadlines()
    d.update({"a": 10})
    assert d.due(10) == ["a"]
    d.update({"a": 10})  # re-armed with a time already passed (a reminder due at once)
    assert d.due(10) == ["a"]


def test_rebuild_replaces_everything_and_clears_stale() -> None:
    d = Deadlines()
    assert d.stale
    d.update({"old": 5, "kept": 50})
    d.rebuild([("kept", 20), ("new", 30), ("gone", None)])
    assert not d.stale
    assert d.due_at == {"kept": 20, "new": 30}
    assert d.due(100) == ["kept", "new"]  # "old" left no trace, "kept" has its rebuilt time


def test_deadlines_against_a_model() -> None:
    """Random updates and pops against a plain dict: due() returns exactly the passed clients, sorted by
    time (then id), each once."""
    rng = random.Random(7)
    d, model = Deadlines(), {}
    now = 0
    for _ in range(2000):
        if rng.random() < 0.6:
            batch = {f"c{rng.randrange(30)}": rng.choice([None, now + rng.randrange(-5, 50)]) for _ in range(3)}
            d.update(batch)
            for c, t in batch.items():
                if t is None:
                    model.pop(c, None)
                else:
                    model[c] = t
        else:
            now += rng.randrange(0, 10)
            expected = sorted((t, c) for c, t in model.items() if t <= now)
            assert d.due(now) == [c for _, c in expected]
            for _, c in expected:
                del model[c]
        assert d.due_at == model and len(d) == len(model)
