"""Ways to deliver a generated history the way real streams do: shuffled per client, with duplicates."""

from __future__ import annotations

import random
from collections import defaultdict

from schemas.events import Envelope


def shuffled_within_clients(events: list[Envelope], seed: int) -> list[Envelope]:
    """Each client's events in a random order; clients still interleave as in the original stream."""
    rng = random.Random(seed)
    per_client: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        per_client[e.client_id].append(e)
    for evs in per_client.values():
        rng.shuffle(evs)
    cursors = {c: iter(evs) for c, evs in per_client.items()}
    return [next(cursors[e.client_id]) for e in events]


def with_duplicates(events: list[Envelope], share: float, seed: int) -> list[Envelope]:
    """Re-deliver `share` of the events (same event_id and content) at random later positions."""
    rng = random.Random(seed)
    n = len(events)
    keyed = [(float(i), e) for i, e in enumerate(events)]
    for i in rng.sample(range(n), int(n * share)):
        keyed.append((rng.uniform(i + 0.5, n), events[i]))
    keyed.sort(key=lambda pair: pair[0])
    return [e for _, e in keyed]
