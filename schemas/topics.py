"""Topic registry: one inbound topic per event family, plus dead-letter, profiles and alerts.

All inbound topics share one partition count and are keyed by `client_id`, so a client's events
stay ordered and co-partitioned with the profile table (no repartitioning on the hot path).
"""

from __future__ import annotations

from dataclasses import dataclass, field

FAMILIES: tuple[str, ...] = ("client", "order", "delivery", "complaint", "feedback")


@dataclass(frozen=True)
class TopicSpec:
    name: str
    purpose: str
    configs: dict[str, str] = field(default_factory=dict)
    inbound: bool = False


def _name(stem: str, version: int = 1) -> str:
    return f"clientpulse.{stem}.v{version}"


INBOUND: dict[str, TopicSpec] = {
    "client": TopicSpec(_name("clients"), "client master data (client.upserted)", inbound=True),
    "order": TopicSpec(_name("orders"), "order.created/updated/cancelled", inbound=True),
    "delivery": TopicSpec(_name("deliveries"), "delivery.dispatched/delivered/failed", inbound=True),
    "complaint": TopicSpec(_name("complaints"), "complaint.opened/updated/resolved/reopened", inbound=True),
    "feedback": TopicSpec(_name("feedback"), "feedback.received (CSAT/NPS/revisit)", inbound=True),
}
DEAD_LETTER = TopicSpec(_name("deadletter"), "rejected input with reason and origin")
PROFILES = TopicSpec(
    _name("profiles"),
    "latest client 360 profile per client",
    configs={"cleanup.policy": "compact"},
)
ALERTS = TopicSpec(_name("alerts"), "churn-risk and SLA alerts")

ALL_TOPICS: tuple[TopicSpec, ...] = (*INBOUND.values(), DEAD_LETTER, PROFILES, ALERTS)
INBOUND_TOPIC_NAMES: tuple[str, ...] = tuple(t.name for t in INBOUND.values())
FAMILY_BY_TOPIC: dict[str, str] = {spec.name: fam for fam, spec in INBOUND.items()}


def topic_for_event_type(event_type: str) -> str:
    """The inbound topic an event type must be published to."""
    family = event_type.split(".", 1)[0]
    try:
        return INBOUND[family].name
    except KeyError:
        raise ValueError(f"unknown event family {family!r} in event_type {event_type!r}") from None
