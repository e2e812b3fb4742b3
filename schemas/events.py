"""The event contract: envelope plus one payload per event type, discriminated on `event_type`.

Forward-compatibility policy (see docs/contract.md):
- Within a `schema_version`, producers may add optional fields. Consumers ignore fields they do
  not know (tolerant reader, `extra="ignore"`); the event as published is kept verbatim in ClickHouse
  (`raw_json`), so nothing an upstream sent is lost.
- Removing or retyping a field, or changing its meaning, is a breaking change: it bumps
  `schema_version`. An event whose `schema_version` is newer than this contract knows is rejected
  to the dead-letter topic instead of being misread.
- Types are strict: JSON `"5"` is not an integer, `5.0` is not a count. Timestamps must carry a
  timezone.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    WithJsonSchema,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1
"""Highest envelope/payload version this contract understands."""

ClientId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^\S(.*\S)?$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=64)]
Count = Annotated[int, Field(ge=0, le=10_000_000)]
Measure = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
MONEY_PATTERN = r"^\d{1,14}(\.\d{1,2})?$"
# Money is exact: send it as a string ("12.50") or a JSON number with at most 2 decimals.
Money = Annotated[
    Decimal,
    Field(ge=0, max_digits=16, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": MONEY_PATTERN},
            ]
        }
    ),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
ClockTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# `*` stands for a digit hidden by masking (sinks/pii.py), so stored, masked events read back unchanged.
_PHONE = re.compile(r"^\+?[0-9 ()\-*]{5,32}$")


class _Model(BaseModel):
    # strict: no silent coercion of "5" into 5; extra="ignore": forward-compatible reader.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


# ---------------------------------------------------------------- vocabularies


class Industry(StrEnum):
    ECOMMERCE = "ecommerce"
    FMCG_RETAIL = "fmcg_retail"
    PHARMA_COLD_CHAIN = "pharma_cold_chain"
    MANUFACTURING = "manufacturing"
    OTHER = "other"


class ServiceType(StrEnum):
    STORAGE = "storage"
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    DELIVERY = "delivery"


class ComplaintCategory(StrEnum):
    DELAY = "delay"
    DAMAGE = "damage"
    LOSS = "loss"
    WRONG_ITEM = "wrong_item"
    BILLING = "billing"
    ATTITUDE = "attitude"
    COMMUNICATION = "communication"
    OTHER = "other"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class ComplaintChannel(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    PORTAL = "portal"
    WECHAT = "wechat"
    ACCOUNT_MANAGER = "account_manager"
    OTHER = "other"


class FeedbackChannel(StrEnum):
    SURVEY = "survey"
    REVISIT_CALL = "revisit_call"
    SITE_VISIT = "site_visit"


class RevisitOutcome(StrEnum):
    POSITIVE = "positive"
    NEUTRAL = "neutral"
    NEGATIVE = "negative"


# Enum fields accept their value string from Python callers too (JSON always does); nothing else coerces.
IndustryField = Annotated[Industry, Field(strict=False)]
ServiceTypeField = Annotated[ServiceType, Field(strict=False)]
ComplaintCategoryField = Annotated[ComplaintCategory, Field(strict=False)]
SeverityField = Annotated[Severity, Field(strict=False)]
ComplaintChannelField = Annotated[ComplaintChannel, Field(strict=False)]
FeedbackChannelField = Annotated[FeedbackChannel, Field(strict=False)]
RevisitOutcomeField = Annotated[RevisitOutcome, Field(strict=False)]


# ---------------------------------------------------------------- payload parts


class Contact(_Model):
    name: Name
    role: Annotated[str, Field(max_length=100)] = ""
    phone: Annotated[str, Field(max_length=32, json_schema_extra={"pattern": _PHONE.pattern})] = ""
    email: Annotated[str, Field(max_length=254, json_schema_extra={"pattern": _EMAIL.pattern})] = ""

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        if v and not _PHONE.match(v):
            raise ValueError("phone must be digits, spaces, ()- and an optional leading + (* for a masked digit)")
        return v

    @field_validator("email")
    @classmethod
    def _email(cls, v: str) -> str:
        if v and not _EMAIL.match(v):
            raise ValueError("email must look like name@domain.tld")
        return v


class StorageRequirements(_Model):
    temperature_min_c: Annotated[float, Field(ge=-80, le=60)] | None = None
    temperature_max_c: Annotated[float, Field(ge=-80, le=60)] | None = None
    humidity_max_pct: Annotated[float, Field(ge=0, le=100)] | None = None
    hazardous_goods: bool = False

    @model_validator(mode="after")
    def _range(self) -> StorageRequirements:
        lo, hi = self.temperature_min_c, self.temperature_max_c
        if lo is not None and hi is not None and lo > hi:
            raise ValueError("temperature_min_c must not exceed temperature_max_c")
        return self


class DeliveryWindow(_Model):
    start: ClockTime
    end: ClockTime
    weekdays: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=lambda: [1, 2, 3, 4, 5])


class TimeRange(_Model):
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        return self


# ---------------------------------------------------------------- payloads


class ClientPayload(_Model):
    name: Name
    contacts: list[Contact] = Field(default_factory=list, max_length=50)
    address: Annotated[str, Field(max_length=500)] = ""
    region: Code
    industry: IndustryField
    goods_categories: list[Code] = Field(default_factory=list, max_length=100)
    storage: StorageRequirements = Field(default_factory=StorageRequirements)
    delivery_regions: list[Code] = Field(default_factory=list, max_length=200)
    delivery_windows: list[DeliveryWindow] = Field(default_factory=list, max_length=50)
    contract_start: date | None = None
    contract_end: date | None = None
    account_manager: Annotated[str, Field(max_length=200)] = ""
    changed_by: Annotated[str, Field(max_length=200)] = ""

    @model_validator(mode="after")
    def _contract(self) -> ClientPayload:
        if self.contract_start and self.contract_end and self.contract_end < self.contract_start:
            raise ValueError("contract_end must not be before contract_start")
        return self


class OrderPayload(_Model):
    """Full order state; `order.updated` carries the whole order again (state transfer)."""

    order_id: Code
    warehouse_id: Code
    service_type: ServiceTypeField
    units: Count
    weight_kg: Measure = 0.0
    volume_m3: Measure = 0.0
    goods_value: Money = Decimal("0")
    service_fee: Money
    currency: Currency = "CNY"
    requested_window: TimeRange | None = None
    destination_region: Annotated[str, Field(max_length=64)] = ""


class OrderCancelledPayload(_Model):
    order_id: Code
    warehouse_id: Annotated[str, Field(max_length=64)] = ""
    reason: Annotated[str, Field(max_length=500)] = ""


class DeliveryPayload(_Model):
    delivery_id: Code
    order_id: Code
    warehouse_id: Annotated[str, Field(max_length=64)] = ""
    carrier: Annotated[str, Field(max_length=100)] = ""
    vehicle_id: Annotated[str, Field(max_length=64)] = ""
    destination_region: Annotated[str, Field(max_length=64)] = ""
    promised_by: AwareDatetime
    delivered_at: AwareDatetime | None = None
    units: Count
    """Units shipped in this delivery."""
    units_delivered: Count = 0
    units_damaged: Count = 0
    units_missing: Count = 0
    temperature_excursion: bool = False
    failure_reason: Annotated[str, Field(max_length=500)] = ""

    @model_validator(mode="after")
    def _units(self) -> DeliveryPayload:
        if self.units_damaged + self.units_missing > self.units:
            raise ValueError(
                f"units_damaged + units_missing ({self.units_damaged} + {self.units_missing}) "
                f"exceeds units ({self.units})"
            )
        if self.units_delivered > self.units:
            raise ValueError(f"units_delivered ({self.units_delivered}) exceeds units ({self.units})")
        return self


class ComplaintPayload(_Model):
    complaint_id: Code
    order_id: Annotated[str, Field(max_length=64)] | None = None
    category: ComplaintCategoryField
    severity: SeverityField
    channel: ComplaintChannelField = ComplaintChannel.OTHER
    description: Annotated[str, Field(max_length=2000)] = ""
    resolution: Annotated[str, Field(max_length=2000)] = ""
    compensation_amount: Money = Decimal("0")
    currency: Currency = "CNY"


class FeedbackPayload(_Model):
    feedback_id: Code
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    nps: Annotated[int, Field(ge=0, le=10)] | None = None
    channel: FeedbackChannelField
    revisit_outcome: RevisitOutcomeField | None = None
    comment: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _some_score(self) -> FeedbackPayload:
        if self.csat is None and self.nps is None and self.revisit_outcome is None:
            raise ValueError("feedback needs at least one of csat, nps or revisit_outcome")
        return self


# ---------------------------------------------------------------- envelope and events


class Envelope(_Model):
    event_id: UUID
    event_type: str
    schema_version: Annotated[int, Field(ge=1, json_schema_extra={"maximum": SCHEMA_VERSION})]
    occurred_at: AwareDatetime
    client_id: ClientId
    source: Annotated[str, Field(min_length=1, max_length=64)]

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > SCHEMA_VERSION:
            raise ValueError(f"schema_version {v} is newer than this consumer knows ({SCHEMA_VERSION})")
        return v

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, v: datetime) -> datetime:
        try:
            year = v.astimezone(UTC).year
        except OverflowError:  # 0001-01-01T00:00+08:00 or 9999-12-31T23:00-05:00: not representable in UTC
            year = v.year
        if not 2000 <= year <= 2100:
            raise ValueError("occurred_at must lie between 2000 and 2100")
        return v

    @property
    def family(self) -> str:
        return family_of(self.event_type)


class ClientUpserted(Envelope):
    event_type: Literal["client.upserted"]
    payload: ClientPayload


class OrderCreated(Envelope):
    event_type: Literal["order.created"]
    payload: OrderPayload


class OrderUpdated(Envelope):
    event_type: Literal["order.updated"]
    payload: OrderPayload


class OrderCancelled(Envelope):
    event_type: Literal["order.cancelled"]
    payload: OrderCancelledPayload


class DeliveryDispatched(Envelope):
    event_type: Literal["delivery.dispatched"]
    payload: DeliveryPayload


class DeliveryDelivered(Envelope):
    event_type: Literal["delivery.delivered"]
    payload: DeliveryPayload

    @model_validator(mode="after")
    def _needs_time(self) -> DeliveryDelivered:
        if self.payload.delivered_at is None:
            raise ValueError("payload.delivered_at is required for delivery.delivered")
        return self


class DeliveryFailed(Envelope):
    event_type: Literal["delivery.failed"]
    payload: DeliveryPayload

    @model_validator(mode="after")
    def _needs_reason(self) -> DeliveryFailed:
        if not self.payload.failure_reason:
            raise ValueError("payload.failure_reason is required for delivery.failed")
        return self


class ComplaintOpened(Envelope):
    event_type: Literal["complaint.opened"]
    payload: ComplaintPayload


class ComplaintUpdated(Envelope):
    event_type: Literal["complaint.updated"]
    payload: ComplaintPayload


class ComplaintResolved(Envelope):
    event_type: Literal["complaint.resolved"]
    payload: ComplaintPayload


class ComplaintReopened(Envelope):
    event_type: Literal["complaint.reopened"]
    payload: ComplaintPayload


class FeedbackReceived(Envelope):
    event_type: Literal["feedback.received"]
    payload: FeedbackPayload


EVENT_MODELS: dict[str, type[Envelope]] = {
    "client.upserted": ClientUpserted,
    "order.created": OrderCreated,
    "order.updated": OrderUpdated,
    "order.cancelled": OrderCancelled,
    "delivery.dispatched": DeliveryDispatched,
    "delivery.delivered": DeliveryDelivered,
    "delivery.failed": DeliveryFailed,
    "complaint.opened": ComplaintOpened,
    "complaint.updated": ComplaintUpdated,
    "complaint.resolved": ComplaintResolved,
    "complaint.reopened": ComplaintReopened,
    "feedback.received": FeedbackReceived,
}
EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)

Event = Annotated[
    ClientUpserted
    | OrderCreated
    | OrderUpdated
    | OrderCancelled
    | DeliveryDispatched
    | DeliveryDelivered
    | DeliveryFailed
    | ComplaintOpened
    | ComplaintUpdated
    | ComplaintResolved
    | ComplaintReopened
    | FeedbackReceived,
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def family_of(event_type: str) -> str:
    """`order.created` -> `order`: the family decides the topic and the raw table."""
    return event_type.split(".", 1)[0]
