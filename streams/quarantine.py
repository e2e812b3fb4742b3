"""Poison pills: when the domain step raises for a batch, find the events it raises for. Pure.

The worker runs one domain step per batch (profile fold, tiering, risk assessment, profile rows) as a
function of the batch's events. A bug triggered by one event must not stop its partition (the batch
would be re-read and fail forever) nor take the other events down with it. `isolate` runs the step
once; only if that raises, it runs it per client, and for a client that fails it bisects the client's
events (in order) to the ones after which the step raises. Those are returned with their exception,
to be dead-lettered (`internal_error`), and the step runs once more on everything else.

Cost: nothing extra while nothing raises. For a failing client with k events in the batch, about
log2(k) runs of the step per poisoned event. The step must be a pure function of its input (the worker's
loads re-read the stored state each time), so that running it again is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
E = TypeVar("E")


def _client_id(event: Any) -> Hashable:
    return event.client_id


def isolate(
    events: Sequence[E], step: Callable[[Sequence[E]], T], client_of: Callable[[E], Hashable] = _client_id
) -> tuple[T, list[tuple[E, Exception]]]:
    """`step(events)` and no failures, or `step(survivors)` and the events the step raised for.

    `events` are events (grouped by `client_id`) or any items with a `client_of` key: the worker's timer
    isolates the assessment of due clients the same way."""
    try:
        return step(events), []
    except Exception:
        pass
    by_client: dict[Hashable, list[E]] = {}
    for event in events:
        by_client.setdefault(client_of(event), []).append(event)
    failures: list[tuple[E, Exception]] = []
    for client_events in by_client.values():
        failures += _poisoned(client_events, step)
    bad = {id(event) for event, _ in failures}
    survivors = [e for e in events if id(e) not in bad]
    try:
        return step(survivors), failures
    except Exception as exc:  # fails only together (several clients interact): none of it can be applied
        return step([]), failures + [(e, exc) for e in survivors]


def _poisoned(events: list[E], step: Callable[[Sequence[E]], object]) -> list[tuple[E, Exception]]:
    """The events of one client after which `step` raises (the state before each is one that works)."""
    failures: list[tuple[E, Exception]] = []
    kept: list[E] = []  # step(kept) works
    rest = events
    while rest:
        error = _raises(step, kept + rest)
        if error is None:
            break
        lo, hi = 0, len(rest)  # step(kept + rest[:lo]) works, step(kept + rest[:hi]) raises `error`
        while hi - lo > 1:
            mid = (lo + hi) // 2
            mid_error = _raises(step, kept + rest[:mid])
            if mid_error is None:
                lo = mid
            else:
                hi, error = mid, mid_error
        failures.append((rest[hi - 1], error))
        kept += rest[: hi - 1]
        rest = rest[hi:]
    return failures


def _raises(step: Callable[[Sequence[E]], object], events: Sequence[E]) -> Exception | None:
    try:
        step(events)
    except Exception as exc:
        return exc
    return None
