"""The clientpulse event contract. Imports nothing else of ours."""

from schemas.events import (
    EVENT_ADAPTER,
    EVENT_MODELS,
    EVENT_TYPES,
    SCHEMA_VERSION,
    Envelope,
    Event,
    family_of,
)
from schemas.validation import Rejection, describe, parse_event

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "SCHEMA_VERSION",
    "Envelope",
    "Event",
    "Rejection",
    "describe",
    "family_of",
    "parse_event",
]
