"""Decode and validate raw bytes into events, with messages that name the offending field."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from schemas.events import EVENT_ADAPTER, EVENT_TYPES, Envelope

MAX_REASON_ERRORS = 5


@dataclass(frozen=True)
class Rejection:
    """Why an input could not become an event. `reason` is a short machine-friendly code."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def describe(exc: ValidationError) -> str:
    """`payload.units: Input should be greater than or equal to 0; ...` (tag stripped from loc)."""
    parts = []
    for err in exc.errors(include_url=False)[:MAX_REASON_ERRORS]:
        loc = [str(x) for x in err["loc"]]
        if loc and loc[0] in EVENT_TYPES:  # discriminated-union tag, not a field
            loc = loc[1:]
        if not loc and err["type"].startswith("union_tag"):
            loc = ["event_type"]
        where = ".".join(loc) or "event"
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    more = exc.error_count() - MAX_REASON_ERRORS
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def classify(exc: ValidationError) -> str:
    """A stable reason code for metrics and the dead-letter table; specific only when unambiguous."""
    errors = exc.errors(include_url=False)
    types = {e["type"] for e in errors}
    if types & {"json_invalid", "json_type"}:
        return "malformed_json"
    if "union_tag_not_found" in types:
        return "missing_event_type"
    if "union_tag_invalid" in types:
        return "unknown_event_type"
    if types == {"timezone_aware"}:
        return "naive_timestamp"
    if all(e["loc"] and e["loc"][-1] == "client_id" for e in errors):
        return "invalid_client_id"
    return "schema_violation"


def parse_event(raw: bytes | str) -> Envelope | Rejection:
    """One raw JSON document -> a typed event, or a Rejection saying precisely why not."""
    try:
        return EVENT_ADAPTER.validate_json(raw)  # type: ignore[return-value]
    except ValidationError as exc:  # non-UTF-8 input arrives here too, as malformed_json
        return Rejection(classify(exc), describe(exc))
