"""Deterministic synthetic history of a 3PL's clients, with ground-truth labels.

`generate(clients, days, seed, start)` returns every event the upstream systems (CRM, OMS, TMS,
ticketing, survey tools) would have published for `clients` clients over `days` days, plus one
`ClientLabel` per client saying what really happened to it (seasonal? churned? when?). The labels
are the answer key for evaluating churn warnings.

The story behind the numbers:

- Clients differ by industry (e-commerce, FMCG retail, pharma cold chain, manufacturing) and size:
  large clients order several times a day, small ones a few times a week. Orders follow a weekly
  rhythm (quiet weekends) and a mild calendar season (Double 11, 618, Spring Festival, National Day).
- Order arrivals are a renewal process on a time-varying rate: small clients order at a fairly
  regular cadence, so a long silence means something.
- Most orders are delivered by us (dispatched, then delivered or failed, sometimes redelivered);
  outbound orders are handed to the client's own carrier and inbound orders are goods receipts, so
  neither has delivery events.
- About 12% of clients (medium or large) are strongly seasonal but healthy: a peak quarter at several
  times their usual volume and a deep trough, tied to the calendar day of the year, so a history of
  two years repeats it and a one-year history shows the whole cycle. With less than a year of
  history the swing is kept mild. Their service and satisfaction stay normal and they keep ordering
  (about twice a week at least) through the trough.
- About 15% of clients churn. Service trouble starts first (late, damaged, missing, failed deliveries,
  temperature excursions; complaints that are more frequent, more severe, slower to resolve and
  reopened; sour surveys and revisit calls). From `churn_starts_at` orders thin out and shrink over
  45–90 days (shorter in short histories), then a last stock-clearance order goes out and nothing
  follows: `churned_at` is that last order, and for 85% of churners it lies 30 or more days before
  the end of the history. The other 15% are still fading out when the history ends (`churned_at` is
  then their last order so far). A few churners are "quiet": little service trouble, but falling
  orders and satisfaction.
- Healthy clients are not spotless: some have a service incident (a bad few weeks without a drop in
  orders), some a temporary dip in orders (without service trouble), some a slow downward trend,
  and a few are onboarded during the history.

Pure: no I/O, no clock, no Kafka or ClickHouse. Everything comes from `random.Random(seed)`, so the
same arguments give byte-identical events (including event ids) and labels. Events are built through
the `schemas.events` models, so an invalid event cannot be produced.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.events import (
    EVENT_MODELS,
    SCHEMA_VERSION,
    ClientPayload,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintPayload,
    Contact,
    DeliveryPayload,
    DeliveryWindow,
    Envelope,
    FeedbackChannel,
    FeedbackPayload,
    Industry,
    OrderCancelledPayload,
    OrderPayload,
    RevisitOutcome,
    ServiceType,
    Severity,
    StorageRequirements,
    TimeRange,
)

__all__ = ["DEFAULT_START", "ClientLabel", "History", "generate"]

DEFAULT_START = date(2025, 1, 1)
"""Fixed default first day of the history (never today: output must be reproducible)."""

DAY = 86_400
HOUR = 3_600
LOCAL_UTC_OFFSET_H = 8
"""Clients work on China Standard Time; business hours 08:00-20:00 local are 00:00-12:00 UTC."""

SIZE_SHARES = {"large": 0.06, "medium": 0.26, "small": 0.68}

INDUSTRIES = (Industry.ECOMMERCE, Industry.FMCG_RETAIL, Industry.PHARMA_COLD_CHAIN, Industry.MANUFACTURING)
INDUSTRY_WEIGHTS = (0.35, 0.30, 0.15, 0.20)

WAREHOUSE_BY_REGION = {
    "east": "WH-SH1",
    "south": "WH-GZ1",
    "north": "WH-BJ1",
    "west": "WH-CD1",
    "central": "WH-WH1",
}
REGIONS = tuple(WAREHOUSE_BY_REGION)
REGION_BY_WAREHOUSE = {w: r for r, w in WAREHOUSE_BY_REGION.items()}
REGION_WEIGHTS = (0.34, 0.26, 0.18, 0.10, 0.12)
CITIES = {
    "east": ("Shanghai", "Hangzhou", "Suzhou", "Nanjing", "Ningbo"),
    "south": ("Guangzhou", "Shenzhen", "Dongguan", "Xiamen", "Foshan"),
    "north": ("Beijing", "Tianjin", "Shijiazhuang", "Jinan"),
    "west": ("Chengdu", "Chongqing", "Xi'an", "Kunming"),
    "central": ("Wuhan", "Changsha", "Zhengzhou", "Hefei"),
}
CARRIERS = ("in-house fleet", "SF Express", "JD Logistics", "Deppon", "ZTO Freight", "Best Express")
COLD_CHAIN_CARRIERS = ("in-house cold-chain fleet", "SF Cold Chain", "JD Cold Chain")

# Orders per weekday (Mon..Sun) relative to a normal weekday.
WEEKDAY_FACTOR = (1.1, 1.05, 1.0, 1.0, 1.05, 0.45, 0.25)
# Local business hours 08:00..19:59, weight per hour.
HOUR_WEIGHTS = (0.5, 1.2, 1.4, 1.2, 0.7, 0.8, 1.2, 1.3, 1.1, 0.9, 0.6, 0.3)
_HOUR_CUM = tuple(sum(HOUR_WEIGHTS[: i + 1]) / sum(HOUR_WEIGHTS) for i in range(len(HOUR_WEIGHTS)))

# Weekday order rate (orders per weekday) by size, and gamma shape of inter-order gaps (higher: more regular).
BASE_RATE = {"large": (2.0, 3.6), "medium": (0.3, 0.75), "small": (0.16, 0.42)}
CADENCE_SHAPE = {"large": 1.5, "medium": 3.0, "small": 5.0}
UNITS_MEDIAN = {"large": 260.0, "medium": 90.0, "small": 30.0}
SURVEY_EVERY_DAYS = {"large": 30, "medium": 61, "small": 91}
RESOLUTION_SIZE_FACTOR = {"large": 0.6, "medium": 0.85, "small": 1.0}

# Per industry: unit weight kg, unit volume m3, unit goods value CNY, fee per unit CNY, fee per kg CNY.
UNIT_ECONOMICS = {
    Industry.ECOMMERCE: (0.8, 0.004, 95.0, 1.6, 0.25),
    Industry.FMCG_RETAIL: (1.6, 0.003, 28.0, 0.9, 0.18),
    Industry.PHARMA_COLD_CHAIN: (0.35, 0.0015, 420.0, 4.5, 0.6),
    Industry.MANUFACTURING: (6.5, 0.02, 260.0, 2.2, 0.12),
}
SERVICE_TYPES = (ServiceType.DELIVERY, ServiceType.OUTBOUND, ServiceType.INBOUND)
SERVICE_CUM_WEIGHTS = (0.65, 0.80, 1.0)
"""Most orders are delivered by us; outbound orders are handed to the client's carrier; inbound are receipts."""
BASE_FEE = {ServiceType.DELIVERY: 60.0, ServiceType.OUTBOUND: 35.0, ServiceType.INBOUND: 25.0}
GOODS_CATEGORIES = {
    Industry.ECOMMERCE: ("apparel", "electronics", "cosmetics", "home_goods", "toys", "books"),
    Industry.FMCG_RETAIL: ("beverages", "snacks", "personal_care", "household_cleaning", "dairy_ambient"),
    Industry.PHARMA_COLD_CHAIN: ("vaccines", "biologics", "insulin", "diagnostics", "chilled_medicines"),
    Industry.MANUFACTURING: ("auto_parts", "machinery_parts", "electronic_components", "chemicals", "packaging"),
}
INDUSTRY_WORD = {
    Industry.ECOMMERCE: ("E-commerce", "Online Retail", "Digital Commerce"),
    Industry.FMCG_RETAIL: ("Foods", "Consumer Goods", "Retail", "Beverage"),
    Industry.PHARMA_COLD_CHAIN: ("Pharmaceutical", "Biotech", "Medical", "Health"),
    Industry.MANUFACTURING: ("Industrial", "Machinery", "Precision Manufacturing", "Auto Parts"),
}
# Peak day-of-year of strongly seasonal clients: Double 11 stock-up, pre-Spring-Festival gifts or
# summer drinks, flu season, autumn capital goods.
SEASON_PEAK_DOY = {
    Industry.ECOMMERCE: (300,),
    Industry.FMCG_RETAIL: (10, 195),
    Industry.PHARMA_COLD_CHAIN: (345,),
    Industry.MANUFACTURING: (100, 255),
}
SPRING_FESTIVAL = {
    2018: date(2018, 2, 16),
    2019: date(2019, 2, 5),
    2020: date(2020, 1, 25),
    2021: date(2021, 2, 12),
    2022: date(2022, 2, 1),
    2023: date(2023, 1, 22),
    2024: date(2024, 2, 10),
    2025: date(2025, 1, 29),
    2026: date(2026, 2, 17),
    2027: date(2027, 2, 6),
    2028: date(2028, 1, 26),
    2029: date(2029, 2, 13),
    2030: date(2030, 2, 3),
    2031: date(2031, 1, 23),
    2032: date(2032, 2, 11),
}

SYLLABLES = (
    "Hua", "Xin", "Tai", "Kang", "Ming", "Yuan", "Sheng", "Long", "Feng", "Da", "Jin", "Hong", "An", "Rui",
    "Bao", "Heng", "Tian", "Cheng", "Yi", "Zhong", "Guang", "Mei", "Jia", "Hai", "Shun", "Fu", "Lian", "Wei",
)  # fmt: skip
SURNAMES = ("Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu", "Xu", "Sun", "Ma", "Zhu")
GIVEN_NAMES = (
    "Wei", "Fang", "Na", "Min", "Jing", "Lei", "Qiang", "Yan", "Jun", "Tao", "Xiu", "Hui", "Ping", "Gang",
    "Lin", "Hao", "Yu", "Ting", "Chao", "Juan",
)  # fmt: skip
CONTACT_ROLES = ("logistics manager", "procurement lead", "finance", "operations director", "warehouse coordinator")
ROADS = ("Zhongshan", "Renmin", "Jiefang", "Jianshe", "Hongqiao", "Binjiang", "Kejiyuan", "Gongye", "Huanhu")
DISTRICTS = ("Pudong", "Baiyun", "Chaoyang", "Wuhou", "Jiangan", "Xihu", "Nanshan", "Haidian", "Yuelu", "Jinshui")
ACCOUNT_MANAGERS = (
    "Chen Jing", "Li Hao", "Wang Fang", "Zhang Wei", "Liu Yan", "Zhao Lei", "Sun Ting", "Zhou Min", "Wu Gang",
    "Xu Na",
)  # fmt: skip

FAILURE_REASONS = (
    "consignee not available",
    "address not found",
    "refused by consignee",
    "vehicle breakdown",
    "missed delivery window",
    "road closure",
)
CANCEL_REASONS = ("client request", "stock unavailable", "duplicate order", "invalid address", "order consolidated")
COMPLAINT_TEXT = {
    ComplaintCategory.DELAY: ("delivery arrived after the promised time", "shipment late again, store shelf empty"),
    ComplaintCategory.DAMAGE: ("cartons crushed on arrival", "goods damaged in transit", "wet packaging"),
    ComplaintCategory.LOSS: ("units missing from delivery", "short shipment against packing list"),
    ComplaintCategory.WRONG_ITEM: ("wrong SKU picked", "wrong batch delivered", "mixed-up labels"),
    ComplaintCategory.BILLING: (
        "invoice does not match agreed rates",
        "double-charged storage fee",
        "unclear surcharge",
    ),
    ComplaintCategory.ATTITUDE: ("driver was rude to store staff", "warehouse staff unhelpful on the phone"),
    ComplaintCategory.COMMUNICATION: ("no proactive notice of delay", "tracking not updated", "no reply to emails"),
    ComplaintCategory.OTHER: ("paperwork missing", "pallet labelling not as agreed"),
}
RESOLUTIONS = {
    ComplaintCategory.DELAY: "apologised, route re-planned, priority dispatch for next orders",
    ComplaintCategory.DAMAGE: "damaged units replaced, packaging standard reviewed",
    ComplaintCategory.LOSS: "missing units re-shipped, stock reconciled",
    ComplaintCategory.WRONG_ITEM: "correct items delivered, picker retrained",
    ComplaintCategory.BILLING: "invoice corrected and re-issued",
    ComplaintCategory.ATTITUDE: "staff coached, formal apology sent",
    ComplaintCategory.COMMUNICATION: "notification settings fixed, contact person assigned",
    ComplaintCategory.OTHER: "issue clarified with client",
}
SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)
CHANNELS = (
    ComplaintChannel.PHONE,
    ComplaintChannel.EMAIL,
    ComplaintChannel.PORTAL,
    ComplaintChannel.WECHAT,
    ComplaintChannel.ACCOUNT_MANAGER,
)
CHANNEL_CUM_WEIGHTS = (0.25, 0.45, 0.65, 0.9, 1.0)
SURVEY_COMMENTS = {
    "good": ("reliable service", "good communication with the warehouse team", "happy with on-time rate", ""),
    "mixed": ("some delays lately", "okay but room for improvement", "billing could be clearer", ""),
    "bad": ("too many late deliveries", "considering other providers", "damage rate unacceptable", "slow responses"),
}


# ---------------------------------------------------------------- public types


@dataclass(frozen=True)
class ClientLabel:
    """Ground truth for one client: what the generator made happen to it.

    `churn_starts_at` is when the churner's orders begin to decline (service trouble may start a few
    weeks earlier); `churned_at` is its last order in the history. Both are None for other clients.
    """

    client_id: str
    industry: str
    size: str
    seasonal: bool
    churns: bool
    churn_starts_at: datetime | None
    churned_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "industry": self.industry,
            "size": self.size,
            "seasonal": self.seasonal,
            "churns": self.churns,
            "churn_starts_at": self.churn_starts_at.isoformat() if self.churn_starts_at else None,
            "churned_at": self.churned_at.isoformat() if self.churned_at else None,
        }


@dataclass(frozen=True)
class History:
    events: list[Envelope]
    """All events, sorted by occurred_at; ties by client, then by generation order."""
    labels: list[ClientLabel]
    """One label per client, in client-id order."""


def generate(clients: int = 200, days: int = 365, seed: int = 7, start: date | None = None) -> History:
    """A reproducible history of `clients` clients over `days` days from `start` (00:00 UTC)."""
    if clients < 0 or days < 1:
        raise ValueError("clients must be >= 0 and days >= 1")
    start = start or DEFAULT_START
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    plans = _plan_clients(clients, days, seed)
    calendar = {ind: [_calendar_factor(ind, start + timedelta(days=d)) for d in range(days)] for ind in INDUSTRIES}
    rows: list[tuple[int, int, int, Envelope]] = []
    labels: list[ClientLabel] = []
    for plan in plans:
        story = _ClientStory(plan, start, start_dt, days, calendar[plan.industry])
        story.tell()
        rows.extend((t, plan.index, seq, ev) for t, seq, ev in story.events)
        labels.append(story.label())
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    return History(events=[r[3] for r in rows], labels=labels)


# ---------------------------------------------------------------- calendar


def _signed_days(d: date, anchors: list[date]) -> int:
    """Days from the nearest anchor to d (negative: before it)."""
    return min(((d - a).days for a in anchors), key=abs)


def _yearly(d: date, month: int, day: int) -> list[date]:
    return [date(y, month, day) for y in (d.year - 1, d.year, d.year + 1)]


def _spring_festivals(d: date) -> list[date]:
    return [SPRING_FESTIVAL.get(y, date(y, 2, 1)) for y in (d.year - 1, d.year, d.year + 1)]


def _calendar_factor(industry: Industry, d: date) -> float:
    """Mild seasonality every client of an industry shares (holidays, shopping festivals)."""
    f = 1.0
    sf = _signed_days(d, _spring_festivals(d))
    if -7 <= sf <= 10:  # Spring Festival shutdown
        f *= {Industry.MANUFACTURING: 0.3, Industry.FMCG_RETAIL: 0.55, Industry.ECOMMERCE: 0.6}.get(industry, 0.75)
    elif -28 <= sf < -7:  # stocking up before the holiday
        f *= {Industry.FMCG_RETAIL: 1.35, Industry.ECOMMERCE: 1.15}.get(industry, 1.05)
    elif 10 < sf <= 20:  # restart
        f *= 0.85
    nd = _signed_days(d, _yearly(d, 10, 1))
    if 0 <= nd <= 6:  # National Day golden week
        f *= {Industry.MANUFACTURING: 0.5, Industry.ECOMMERCE: 0.9}.get(industry, 0.7)
    if industry is Industry.ECOMMERCE:
        x = _signed_days(d, _yearly(d, 11, 11))
        if -21 <= x <= 0:
            f *= 1 + 0.7 * (1 + x / 21)
        elif 0 < x <= 7:
            f *= 1.2
        x = _signed_days(d, _yearly(d, 6, 18))
        if -14 <= x <= 0:
            f *= 1 + 0.3 * (1 + x / 14)
        x = _signed_days(d, _yearly(d, 12, 12))
        if -7 <= x <= 0:
            f *= 1.15
    elif industry is Industry.FMCG_RETAIL:
        if _signed_days(d, _yearly(d, 9, 10)) in range(0, 15):  # Mid-Autumn gift season (approx.)
            f *= 1.15
    elif industry is Industry.PHARMA_COLD_CHAIN:
        f *= 1 + 0.15 * math.cos(2 * math.pi * (d.timetuple().tm_yday - 15) / 365.25)
    elif industry is Industry.MANUFACTURING and 7 <= nd <= 80:
        f *= 1.08
    return f


# ---------------------------------------------------------------- client plans


@dataclass
class _Plan:
    index: int
    client_id: str
    seed: int
    industry: Industry
    size: str
    seasonal: bool
    churns: bool
    onboard_day: float = 0.0
    churn_start_day: float | None = None
    churn_end_day: float | None = None
    """Planned end of the decline: order rate reaches zero here."""
    quality_lead_days: float = 0.0
    service_hit: float = 0.0
    """0..1, how badly service degrades during the decline."""
    satisfaction_hit: float = 0.0
    contract_ends_at_churn: bool = False


def _plan_clients(clients: int, days: int, seed: int) -> list[_Plan]:
    """Who is large, who is seasonal, who churns: fixed shares, drawn from the master seed."""
    master = random.Random(seed)
    industries = [master.choices(INDUSTRIES, INDUSTRY_WEIGHTS)[0] for _ in range(clients)]
    n_churn = round(clients * master.uniform(0.13, 0.17))
    churners = master.sample(range(clients), n_churn)
    churner_set = set(churners)
    late_churners = set(churners[: round(0.15 * n_churn)])  # still fading out when the history ends
    others = [i for i in range(clients) if i not in churner_set]
    n_seasonal = min(len(others), round(clients * master.uniform(0.10, 0.14)))
    seasonal = master.sample(others, n_seasonal)
    seasonal_set = set(seasonal)
    # Seasonal clients run real volume (they keep ordering through the trough): medium or large.
    n_large, n_medium = round(clients * SIZE_SHARES["large"]), round(clients * SIZE_SHARES["medium"])
    sizes = ["small"] * clients
    n_seasonal_large = min(n_large, round(0.2 * n_seasonal))
    for k, i in enumerate(seasonal):
        sizes[i] = "large" if k < n_seasonal_large else "medium"
    # Churners get the overall size mix (losing a key account is the expensive case); the others the rest.
    n_large_left = n_large - n_seasonal_large
    n_medium_left = max(0, n_medium - (n_seasonal - n_seasonal_large))
    n_churn_large = min(n_large_left, round(n_churn * SIZE_SHARES["large"]))
    n_churn_medium = min(n_medium_left, round(n_churn * SIZE_SHARES["medium"]))
    for k, i in enumerate(churners[: n_churn_large + n_churn_medium]):
        sizes[i] = "large" if k < n_churn_large else "medium"
    healthy = [i for i in others if i not in seasonal_set]
    master.shuffle(healthy)
    n_large_left -= n_churn_large
    n_medium_left -= n_churn_medium
    for k, i in enumerate(healthy[: n_large_left + n_medium_left]):
        sizes[i] = "large" if k < n_large_left else "medium"
    seeds = [master.getrandbits(64) for _ in range(clients)]

    plans = []
    for i in range(clients):
        plan = _Plan(
            index=i,
            client_id=f"C{i + 1:05d}",
            seed=seeds[i],
            industry=industries[i],
            size=sizes[i],
            seasonal=i in seasonal_set,
            churns=i in churner_set,
        )
        rng = random.Random(plan.seed ^ 0x5EED)
        if plan.churns:
            _plan_churn(plan, rng, days, fades_past_end=i in late_churners)
        elif not plan.seasonal and days >= 60 and rng.random() < 0.08:
            plan.onboard_day = float(int(rng.uniform(0.05, 0.5) * days))
        plans.append(plan)
    return plans


def _plan_churn(plan: _Plan, rng: random.Random, days: int, fades_past_end: bool) -> None:
    decline = max(10.0, rng.uniform(45, 90) * min(1.0, days / 300))
    tail = 30.0
    if not fades_past_end:  # stops well before the end of the history: absence is observable
        hi = days - tail - decline
        lo = 0.5 * days
        if hi < lo:
            lo = max(0.25 * days, hi - 0.1 * days)
            hi = max(hi, lo)
        s = rng.uniform(lo, hi)
    else:  # still fading out when the history ends
        end = rng.uniform(days - tail, days + 20)
        s = max(0.5 * days, end - decline)
    plan.churn_start_day = s
    plan.churn_end_day = s + decline
    quiet = rng.random() < 0.15  # leaves for price or strategy, with little service trouble
    plan.service_hit = rng.uniform(0.1, 0.3) if quiet else rng.uniform(0.55, 1.0)
    plan.satisfaction_hit = rng.uniform(0.45, 0.7) if quiet else rng.uniform(0.7, 1.0)
    # service trouble usually starts before the client begins to move volume away
    plan.quality_lead_days = rng.uniform(0, 7) if quiet else rng.uniform(7, 28)
    plan.contract_ends_at_churn = rng.random() < 0.5


# ---------------------------------------------------------------- one client's story


def _money(x: float) -> Decimal:
    return Decimal(f"{max(0.0, x):.2f}")


def _clamp(x: float, lo: float, hi: float) -> float:
    return lo if x < lo else hi if x > hi else x


class _ClientStory:
    """Builds one client's events (unsorted, with int seconds since the history start)."""

    def __init__(self, plan: _Plan, start: date, start_dt: datetime, days: int, calendar: list[float]) -> None:
        self.p = plan
        self.rng = random.Random(plan.seed)
        self.start = start
        self.start_dt = start_dt
        self.days = days
        self.end_s = days * DAY
        self.calendar = calendar
        self.events: list[tuple[int, int, Envelope]] = []
        self.order_times: list[int] = []
        self.clearance_t: int | None = None
        self.complaint_times: list[int] = []
        self.n_orders = self.n_deliveries = self.n_complaints = self.n_feedback = 0
        self._setup()

    # -- set-up: master data, rates, quality

    def _setup(self) -> None:
        rng, p = self.rng, self.p
        self.region = rng.choices(REGIONS, REGION_WEIGHTS)[0]
        self.warehouses = [WAREHOUSE_BY_REGION[self.region]]
        if p.size == "large":
            self.warehouses.append(WAREHOUSE_BY_REGION[rng.choice([r for r in REGIONS if r != self.region])])
        extra_regions = rng.sample([r for r in REGIONS if r != self.region], k={"large": 3, "medium": 2}.get(p.size, 1))
        self.delivery_regions = [self.region, *sorted(extra_regions)]
        self.base_rate = rng.uniform(*BASE_RATE[p.size])
        if p.seasonal:  # enough volume that the peak stands well above the trough floor below
            self.base_rate = max(1.3 * self.base_rate, 0.8)
        self.cadence_shape = CADENCE_SHAPE[p.size]
        self.trend = 0.0 if (p.seasonal or p.churns) else _clamp(rng.gauss(0.04, 0.15), -0.35, 0.4)
        self.price_factor = rng.uniform(0.8, 1.0) if p.size == "large" else rng.uniform(0.9, 1.15)
        self.units_median = UNITS_MEDIAN[p.size] * rng.uniform(0.6, 1.5)
        self.complaint_propensity = rng.uniform(0.6, 1.4)
        self.csat_mean = _clamp(rng.gauss(4.25, 0.3), 3.5, 4.85)
        self.nps_mean = _clamp(rng.gauss(8.0, 0.9), 5.5, 9.6)
        self.late_p = rng.uniform(0.015, 0.045)
        self.damage_p = rng.uniform(0.005, 0.02)
        self.missing_p = rng.uniform(0.002, 0.008)
        self.fail_p = rng.uniform(0.004, 0.012)
        self.excursion_p = rng.uniform(0.005, 0.015) if p.industry is Industry.PHARMA_COLD_CHAIN else 0.0
        # strong season for seasonal clients
        if p.seasonal:
            self.season_peak = rng.choice(SEASON_PEAK_DOY[p.industry]) + rng.uniform(-20, 20)
            if self.days >= 365:
                self.season_lo, self.season_hi = rng.uniform(0.12, 0.25), rng.uniform(3.0, 5.0)
            else:
                self.season_lo, self.season_hi = rng.uniform(0.45, 0.6), rng.uniform(1.8, 2.5)
            self.season_floor = 0.5 / self.base_rate  # keeps ordering (about twice a week) in the trough
        # healthy clients' noise: a service incident or a temporary dip in orders (not both)
        self.incident: tuple[float, float, float] | None = None
        self.dip: tuple[float, float, float] | None = None
        if not (p.churns or p.seasonal) and self.days >= 60:
            u = rng.random()
            if u < 0.12:
                a = rng.uniform(max(p.onboard_day, 0.1 * self.days), 0.9 * self.days)
                self.incident = (a, a + rng.uniform(14, 30), rng.uniform(1.5, 3.0))
            elif u < 0.22:
                a = rng.uniform(max(p.onboard_day, 0.1 * self.days), 0.9 * self.days)
                self.dip = (a, a + rng.uniform(20, 40), rng.uniform(0.4, 0.65))
        self._setup_master_data()

    def _setup_master_data(self) -> None:
        rng, p = self.rng, self.p
        brand = rng.choice(SYLLABLES) + rng.choice(SYLLABLES).lower()
        self.domain = f"{brand.lower()}{p.index + 1}.com.cn"
        city = rng.choice(CITIES[self.region])
        n_contacts = {"large": 3, "medium": 2}.get(p.size, rng.choice((1, 2)))
        roles = rng.sample(CONTACT_ROLES, n_contacts)
        if p.onboard_day > 0:
            contract_start = self.start + timedelta(days=int(p.onboard_day))
        else:
            contract_start = self.start - timedelta(days=rng.randint(30, 1200))
        term = rng.choice((365, 730, 1095))
        contract_end = contract_start + timedelta(days=term)
        while contract_end < self.start:
            contract_end += timedelta(days=term)
        self.contract_term = term
        if p.churns and p.contract_ends_at_churn and p.churn_end_day is not None:
            churn_end = self.start + timedelta(days=int(p.churn_end_day + rng.uniform(-15, 30)))
            contract_end = max(churn_end, contract_start + timedelta(days=30))
        storage = StorageRequirements()
        if p.industry is Industry.PHARMA_COLD_CHAIN:
            storage = StorageRequirements(temperature_min_c=2.0, temperature_max_c=8.0, humidity_max_pct=60.0)
        elif p.industry is Industry.FMCG_RETAIL and rng.random() < 0.4:
            storage = StorageRequirements(temperature_min_c=10.0, temperature_max_c=25.0, humidity_max_pct=70.0)
        elif p.industry is Industry.MANUFACTURING and rng.random() < 0.15:
            storage = StorageRequirements(hazardous_goods=True, temperature_max_c=30.0)
        windows = [DeliveryWindow(start="08:00", end="12:00", weekdays=[1, 2, 3, 4, 5])]
        if p.size != "small":
            windows.append(DeliveryWindow(start="13:00", end="18:00", weekdays=[1, 2, 3, 4, 5, 6]))
        self.master: dict[str, Any] = {
            "name": f"{brand} {rng.choice(INDUSTRY_WORD[p.industry])} Co., Ltd.",
            "contacts": [self._contact(role) for role in roles],
            "address": f"No. {rng.randint(1, 999)} {rng.choice(ROADS)} Road, {rng.choice(DISTRICTS)} District, {city}",
            "region": self.region,
            "industry": p.industry,
            "goods_categories": sorted(rng.sample(GOODS_CATEGORIES[p.industry], rng.randint(1, 3))),
            "storage": storage,
            "delivery_regions": self.delivery_regions,
            "delivery_windows": windows,
            "contract_start": contract_start,
            "contract_end": contract_end,
            "account_manager": rng.choice(ACCOUNT_MANAGERS[:4] if p.size == "large" else ACCOUNT_MANAGERS),
        }

    def _contact(self, role: str) -> Contact:
        rng = self.rng
        surname, given = rng.choice(SURNAMES), rng.choice(GIVEN_NAMES)
        phone = f"+86 1{rng.choice('3589')}{rng.randrange(10)} {rng.randrange(10_000):04d} {rng.randrange(10_000):04d}"
        email = f"{given.lower()}.{surname.lower()}{rng.randrange(100)}@{self.domain}"
        return Contact(name=f"{surname} {given}", role=role, phone=phone, email=email)

    # -- time-varying state

    def churn_progress(self, day: float) -> float:
        s, e = self.p.churn_start_day, self.p.churn_end_day
        if s is None or e is None or day < s:
            return 0.0
        return min(1.0, (day - s) / (e - s))

    def churn_volume(self, day: float) -> float:
        """Share of the usual order rate a churner keeps: falls to ~20% over the decline, then nothing."""
        s, e = self.p.churn_start_day, self.p.churn_end_day
        if s is None or e is None or day < s:
            return 1.0
        if day >= e:
            return 0.0
        return 1 - 0.8 * ((day - s) / (e - s)) ** 0.7

    def _degradation(self, day: float) -> float:
        """0..1 ramp of a churner's decline, starting `quality_lead_days` before the order decline."""
        s, e = self.p.churn_start_day, self.p.churn_end_day
        if s is None or e is None:
            return 0.0
        s0 = s - self.p.quality_lead_days
        if day < s0:
            return 0.0
        return min(1.0, (day - s0) / (0.5 * (e - s) + self.p.quality_lead_days))

    def service_stress(self, day: float) -> float:
        """0..1: how far the churner's service has degraded (starts a little before the order decline)."""
        return self.p.service_hit * self._degradation(day)

    def satisfaction_drop(self, day: float) -> float:
        return self.p.satisfaction_hit * self._degradation(day)

    def incident_level(self, day: float) -> float:
        if self.incident and self.incident[0] <= day < self.incident[1]:
            return self.incident[2]
        return 0.0

    def _day_rate(self, d: int) -> float:
        p = self.p
        if d + 1 <= p.onboard_day:
            return 0.0
        dd = self.start + timedelta(days=d)
        calendar = self.calendar[d]
        if p.churns and d + 0.5 >= (p.churn_start_day or 0.0):
            calendar = min(calendar, 1.0)  # a leaving client moves its peak volume elsewhere first
        r = self.base_rate * WEEKDAY_FACTOR[dd.weekday()] * calendar
        if p.onboard_day > 0:
            r *= min(1.0, 0.3 + 0.7 * (d - p.onboard_day) / 30)
        if self.trend:
            r *= math.exp(self.trend * d / 365)
        if p.seasonal:
            doy = dd.timetuple().tm_yday
            bump = ((1 + math.cos(2 * math.pi * (doy - self.season_peak) / 365.25)) / 2) ** 3
            r *= max(self.season_lo + (self.season_hi - self.season_lo) * bump, self.season_floor)
        if self.dip and self.dip[0] <= d + 0.5 < self.dip[1]:
            r *= self.dip[2]
        if p.churns:
            r *= self.churn_volume(d + 0.5)
        return r

    # -- emission

    def emit(self, t: int, event_type: str, source: str, payload: Any) -> bool:
        if t < 0 or t >= self.end_s:
            return False
        event = EVENT_MODELS[event_type](
            event_id=uuid.UUID(int=self.rng.getrandbits(128), version=4),
            event_type=event_type,
            schema_version=SCHEMA_VERSION,
            occurred_at=self.start_dt + timedelta(seconds=t),
            client_id=self.p.client_id,
            source=source,
            payload=payload,
        )
        self.events.append((t, len(self.events), event))
        return True

    def dt(self, t: int) -> datetime:
        return self.start_dt + timedelta(seconds=t)

    # -- the story

    def tell(self) -> None:
        self._master_data_changes()
        for t in self._order_arrivals():
            self._order(t)
        self._background_complaints()
        self.complaint_times.sort()
        self._surveys()

    def label(self) -> ClientLabel:
        p = self.p
        churn_starts_at = churned_at = None
        if p.churns and p.churn_start_day is not None:
            churn_starts_at = self.dt(round(p.churn_start_day * DAY))
            churned_at = self.dt(self.order_times[-1]) if self.order_times else churn_starts_at
        return ClientLabel(
            client_id=p.client_id,
            industry=p.industry.value,
            size=p.size,
            seasonal=p.seasonal,
            churns=p.churns,
            churn_starts_at=churn_starts_at,
            churned_at=churned_at,
        )

    def _upsert(self, t: int, changed_by: str) -> None:
        self.emit(t, "client.upserted", "crm", ClientPayload(**self.master, changed_by=changed_by))

    def _master_data_changes(self) -> None:
        rng, p = self.rng, self.p
        # existing clients are loaded at the start; new ones the evening before their first order day
        onboard_t = round(p.onboard_day * DAY) - HOUR if p.onboard_day else p.index % HOUR
        self._upsert(onboard_t, "crm-import" if not p.onboard_day else self.master["account_manager"])
        changes: list[tuple[float, str]] = []
        if rng.random() < 0.35:
            changes.append((rng.uniform(p.onboard_day + 5, self.days), "contact"))
        if rng.random() < 0.04:
            changes.append((rng.uniform(p.onboard_day + 5, self.days), "region"))
        if rng.random() < 0.15:
            changes.append((rng.uniform(p.onboard_day + 5, self.days), "windows"))
        # contract renewals, a few weeks before the contract runs out
        end = self.master["contract_end"]
        last_active = p.churn_start_day if p.churns and p.churn_start_day is not None else float(self.days + 400)
        renewals = 0
        while True:
            renew_day = (end - self.start).days - rng.uniform(5, 30)
            if renew_day >= self.days or renew_day >= last_active - 5 or renewals > 5:
                break
            changes.append((max(renew_day, p.onboard_day + 1), "renewal"))
            end += timedelta(days=self.contract_term)
            renewals += 1
        changes.sort(key=lambda c: c[0])
        for day, kind in changes:
            if p.churns and p.churn_end_day is not None and day > p.churn_end_day:
                continue
            if kind == "contact":
                contacts = list(self.master["contacts"])
                k = rng.randrange(len(contacts))
                contacts[k] = self._contact(contacts[k].role)
                self.master["contacts"] = contacts
            elif kind == "region":
                region = rng.choice([r for r in REGIONS if r != self.master["region"]])
                self.master["region"] = region
                city = rng.choice(CITIES[region])
                self.master["address"] = f"No. {rng.randint(1, 999)} {rng.choice(ROADS)} Road, {city}"
                if region not in self.master["delivery_regions"]:
                    self.master["delivery_regions"] = [*self.master["delivery_regions"], region]
            elif kind == "windows":
                self.master["delivery_windows"] = [
                    *self.master["delivery_windows"],
                    DeliveryWindow(start="19:00", end="22:00", weekdays=[1, 2, 3, 4, 5, 6, 7]),
                ][-3:]
            else:
                self.master["contract_end"] = self.master["contract_end"] + timedelta(days=self.contract_term)
            who = "crm-sync" if kind == "contact" and rng.random() < 0.5 else self.master["account_manager"]
            self._upsert(round(day * DAY) + rng.randrange(8 * HOUR) - 8 * HOUR // 2, who)

    def _order_arrivals(self) -> list[int]:
        """A renewal process with gamma gaps on the integrated daily rate (time-rescaling)."""
        rng = self.rng
        rates = [self._day_rate(d) for d in range(self.days)]
        cum = [0.0]
        for r in rates:
            cum.append(cum[-1] + r)
        total = cum[-1]
        shape = self.cadence_shape
        x = rng.random() * rng.gammavariate(shape, 1 / shape)
        times: list[int] = []
        while x < total:
            d = bisect.bisect_right(cum, x) - 1
            frac = (x - cum[d]) / rates[d]
            h = bisect.bisect_left(_HOUR_CUM, frac)
            lo = _HOUR_CUM[h - 1] if h else 0.0
            within = (frac - lo) / (_HOUR_CUM[h] - lo)
            t = d * DAY + (h + 8 - LOCAL_UTC_OFFSET_H) * HOUR + int(within * HOUR)
            if not times or t > times[-1]:
                times.append(t)
            x += rng.gammavariate(shape, 1 / shape)
        if self.p.churns and self.p.churn_start_day is not None:
            times = self._ensure_visible_decline(times)
            times = self._add_clearance(times)
        return times

    def _add_clearance(self, times: list[int]) -> list[int]:
        """A leaving client ships its remaining stock out in one last big order, at the end of the decline."""
        e = self.p.churn_end_day
        assert e is not None
        if e > self.days - 1:
            return times  # still fading out when the history ends
        t = int(e - self.rng.uniform(0.5, 3)) * DAY + 2 * HOUR + self.rng.randrange(6 * HOUR)
        if times and t <= times[-1]:
            return times
        self.clearance_t = t
        return [*times, t]

    def _ensure_visible_decline(self, times: list[int]) -> list[int]:
        """A churner orders at least twice after its decline starts, so the decline is in the data."""
        s, e = self.p.churn_start_day, self.p.churn_end_day
        assert s is not None and e is not None
        e = min(e, self.days - 1.0)
        after = sum(1 for t in times if t >= s * DAY)
        if e - s < 2 or after >= 2:
            return times
        extra = []
        for frac in (0.15, 0.4)[after:]:
            d = int(s + (e - s) * frac * self.rng.uniform(0.8, 1.2))
            extra.append(d * DAY + 2 * HOUR + self.rng.randrange(6 * HOUR))
        return sorted({*times, *(t for t in extra if t >= s * DAY)})

    def _order(self, t: int) -> None:
        rng, p = self.rng, self.p
        self.order_times.append(t)
        day = t / DAY
        progress = self.churn_progress(day)
        stress = self.service_stress(day)
        incident = self.incident_level(day)
        self.n_orders += 1
        order_id = f"SO-{p.client_id}-{self.n_orders:06d}"
        service = rng.choices(SERVICE_TYPES, cum_weights=SERVICE_CUM_WEIGHTS)[0]
        warehouse = self.warehouses[0] if len(self.warehouses) == 1 or rng.random() < 0.75 else self.warehouses[1]
        destination = "" if service is ServiceType.INBOUND else rng.choice(self.master["delivery_regions"])
        units = max(1, round(rng.lognormvariate(math.log(self.units_median), 0.55) * (1 - 0.45 * progress)))
        if t == self.clearance_t:  # stock clearance, picked up by the client's new provider
            order = self._order_payload(
                order_id, warehouse, ServiceType.OUTBOUND, round(units * rng.uniform(3, 8)), self.region, None
            )
            self.emit(t, "order.created", "oms", order)
            return
        wh_region = REGION_BY_WAREHOUSE[warehouse]
        sla_h = 24 if destination == wh_region else 48
        if destination == "west" and wh_region != "west":
            sla_h += 24
        dispatch_lag_h = rng.uniform(1.0, max(1.5, 0.4 * sla_h))
        promised = t + sla_h * HOUR
        promised -= promised % 1800  # promises are made on the half hour
        window = None
        if service is ServiceType.DELIVERY and rng.random() < 0.4:
            window = TimeRange(start=self.dt(promised - 4 * HOUR), end=self.dt(promised))
        order = self._order_payload(order_id, warehouse, service, units, destination, window)
        self.emit(t, "order.created", "oms", order)

        dispatch_t = t + int(dispatch_lag_h * HOUR)
        if rng.random() < 0.015 + 0.06 * progress:
            cancel_t = t + int(rng.uniform(0.1, 0.9) * (dispatch_t - t))
            self.emit(
                cancel_t,
                "order.cancelled",
                "oms",
                OrderCancelledPayload(order_id=order_id, warehouse_id=warehouse, reason=rng.choice(CANCEL_REASONS)),
            )
            return
        if rng.random() < 0.04:
            units = max(1, round(units * rng.uniform(0.7, 1.3)))
            order = self._order_payload(order_id, warehouse, service, units, destination, window)
            self.emit(t + int(rng.uniform(0.2, 0.8) * (dispatch_t - t)), "order.updated", "oms", order)
        if service is not ServiceType.DELIVERY:  # inbound receipts; outbound handed to the client's carrier
            return
        delivered = self._delivery(order, dispatch_t, promised, sla_h, stress, incident)
        if delivered is not None and rng.random() < 0.004 * (1 + incident) + 0.02 * stress:
            self._complaint(  # a picking error, found when the goods are unpacked
                delivered + int(rng.uniform(2, 72) * HOUR),
                ComplaintCategory.WRONG_ITEM,
                self._severity(stress, bias=0),
                order,
            )

    def _order_payload(
        self,
        order_id: str,
        warehouse: str,
        service: ServiceType,
        units: int,
        destination: str,
        window: TimeRange | None,
    ) -> OrderPayload:
        rng = self.rng
        kg, m3, value, fee_unit, fee_kg = UNIT_ECONOMICS[self.p.industry]
        weight = round(units * kg * rng.uniform(0.85, 1.15), 1)
        volume = round(units * m3 * rng.uniform(0.85, 1.15), 3)
        goods_value = units * value * rng.uniform(0.85, 1.15)
        fee = (BASE_FEE[service] + units * fee_unit + weight * fee_kg) * self.price_factor
        if service is not ServiceType.DELIVERY:
            fee *= 0.6
        return OrderPayload(
            order_id=order_id,
            warehouse_id=warehouse,
            service_type=service,
            units=units,
            weight_kg=weight,
            volume_m3=volume,
            goods_value=_money(goods_value),
            service_fee=_money(fee),
            requested_window=window,
            destination_region=destination,
        )

    def _delivery(
        self,
        order: OrderPayload,
        dispatch_t: int,
        promised: int,
        sla_h: int,
        stress: float,
        incident: float,
    ) -> int | None:
        """Dispatch and deliver (or fail) one order; returns when the goods arrived, if they did."""
        rng, p = self.rng, self.p
        cold = p.industry is Industry.PHARMA_COLD_CHAIN
        self.n_deliveries += 1
        delivery_id = f"DL-{p.client_id}-{self.n_deliveries:06d}"
        base = {
            "delivery_id": delivery_id,
            "order_id": order.order_id,
            "warehouse_id": order.warehouse_id,
            "carrier": rng.choice(COLD_CHAIN_CARRIERS if cold else CARRIERS),
            "vehicle_id": f"{order.warehouse_id[3:5]}-TRK-{rng.randrange(1, 400):04d}",
            "destination_region": order.destination_region,
            "promised_by": self.dt(promised),
            "units": order.units,
        }
        if not self.emit(dispatch_t, "delivery.dispatched", "tms", DeliveryPayload(**base)):
            return None
        transit_min_h = 2.0 if sla_h == 24 else 12.0
        degrade = 1 + incident
        if rng.random() < self.fail_p * degrade + 0.06 * stress:
            fail_t = dispatch_t + int(rng.uniform(transit_min_h, sla_h * 0.8) * HOUR)
            reason = rng.choice(FAILURE_REASONS)
            if not self.emit(fail_t, "delivery.failed", "tms", DeliveryPayload(**base, failure_reason=reason)):
                return None
            if rng.random() < 0.35 * self.complaint_propensity * (1 + stress):
                self._complaint(
                    fail_t + int(rng.uniform(0.5, 12) * HOUR), ComplaintCategory.DELAY, self._severity(stress, 1), order
                )
            if rng.random() < 0.7:  # redelivery under a new promise
                self.n_deliveries += 1
                re_dispatch = fail_t + int(rng.uniform(12, 30) * HOUR)
                re_promised = re_dispatch + 24 * HOUR
                base = {**base, "delivery_id": f"DL-{p.client_id}-{self.n_deliveries:06d}"}
                base["promised_by"] = self.dt(re_promised)
                if not self.emit(re_dispatch, "delivery.dispatched", "tms", DeliveryPayload(**base)):
                    return None
                delivered = re_dispatch + int(rng.uniform(transit_min_h, 20) * HOUR)
                payload = DeliveryPayload(**base, delivered_at=self.dt(delivered), units_delivered=order.units)
                return delivered if self.emit(delivered, "delivery.delivered", "tms", payload) else None
            return None
        late = rng.random() < self.late_p * degrade + 0.32 * stress
        if late:
            hours_late = rng.uniform(0.5, 30) * (1 + stress)
            delivered = promised + int(hours_late * HOUR)
        else:
            earliest = dispatch_t + int(transit_min_h * HOUR)
            delivered = rng.randint(min(earliest, promised - 600), promised - 300)
            delivered = max(delivered, dispatch_t + 600)
            hours_late = 0.0
        units = order.units
        damaged = missing = 0
        excursion = False
        if cold and rng.random() < self.excursion_p * degrade * self._summer(delivered) + 0.08 * stress:
            excursion = True
            if rng.random() < 0.5:
                damaged = max(1, round(units * rng.uniform(0.02, 0.3)))
        if rng.random() < self.damage_p * degrade + 0.06 * stress:
            damaged = max(damaged, max(1, round(units * rng.uniform(0.005, 0.08))))
        if rng.random() < self.missing_p * degrade + 0.03 * stress:
            missing = max(1, round(units * rng.uniform(0.002, 0.03)))
        damaged = min(damaged, units)
        missing = min(missing, units - damaged)
        payload = DeliveryPayload(
            **base,
            delivered_at=self.dt(delivered),
            units_delivered=units - missing,
            units_damaged=damaged,
            units_missing=missing,
            temperature_excursion=excursion,
        )
        if not self.emit(delivered, "delivery.delivered", "tms", payload):
            return None
        boost = self.complaint_propensity * (1 + stress)
        opened = delivered + int(rng.uniform(1, 36) * HOUR)
        if excursion and rng.random() < 0.7 * boost:
            self._complaint(opened, ComplaintCategory.DAMAGE, self._severity(stress, 2), order, "temperature excursion")
        elif damaged and rng.random() < 0.45 * boost:
            self._complaint(opened, ComplaintCategory.DAMAGE, self._severity(stress, 1), order)
        elif missing and rng.random() < 0.55 * boost:
            self._complaint(opened, ComplaintCategory.LOSS, self._severity(stress, 1), order)
        elif late and rng.random() < min(0.9, 0.2 * boost * (1 + hours_late / 24)):
            self._complaint(opened, ComplaintCategory.DELAY, self._severity(stress, 0), order)
        return delivered

    def _summer(self, t: int) -> float:
        doy = (self.start + timedelta(seconds=t)).timetuple().tm_yday
        return 1 + 0.8 * max(0.0, math.cos(2 * math.pi * (doy - 200) / 365.25))

    def _severity(self, stress: float, bias: int) -> Severity:
        w = (0.45 - 0.3 * stress, 0.38, 0.13 + 0.2 * stress, 0.04 + 0.1 * stress)
        level = self.rng.choices(range(4), weights=w)[0]
        return SEVERITIES[min(3, level + (1 if bias and self.rng.random() < 0.25 * bias else 0))]

    def _background_complaints(self) -> None:
        """Billing, communication and attitude complaints not tied to one order."""
        rng, p = self.rng, self.p
        monthly = {"large": 0.35, "medium": 0.2, "small": 0.12}[p.size] * self.complaint_propensity
        # an unhappy client complains whatever its size: up to 2.5 extra complaints a month
        peak_daily = (4 * monthly + 2.5) / 30
        last = self.order_times[-1] / DAY + 20 if p.churns and self.order_times else float(self.days)
        day = p.onboard_day + rng.expovariate(peak_daily)
        while day < min(last, self.days):
            stress = max(self.service_stress(day), 0.7 * self.satisfaction_drop(day))
            daily = (monthly * (1 + 3 * stress + 0.5 * self.incident_level(day)) + 2.5 * stress) / 30
            if rng.random() < daily / peak_daily:
                category = rng.choices(
                    (
                        ComplaintCategory.BILLING,
                        ComplaintCategory.COMMUNICATION,
                        ComplaintCategory.ATTITUDE,
                        ComplaintCategory.OTHER,
                    ),
                    weights=(0.35 + 0.3 * stress, 0.3, 0.2, 0.15),
                )[0]
                t = round(day * DAY)
                t = t - t % DAY + rng.randrange(11 * HOUR)
                self._complaint(t, category, self._severity(stress, 0), None)
            day += rng.expovariate(peak_daily)

    def _complaint(
        self,
        opened: int,
        category: ComplaintCategory,
        severity: Severity,
        order: OrderPayload | None,
        detail: str = "",
    ) -> None:
        rng, p = self.rng, self.p
        self.n_complaints += 1
        stress = self.service_stress(opened / DAY)
        text = rng.choice(COMPLAINT_TEXT[category]) + (f" ({detail})" if detail else "")
        base = {
            "complaint_id": f"CP-{p.client_id}-{self.n_complaints:05d}",
            "order_id": order.order_id if order else None,
            "category": category,
            "severity": severity,
            "channel": rng.choices(CHANNELS, cum_weights=CHANNEL_CUM_WEIGHTS)[0],
            "description": text,
        }
        if not self.emit(opened, "complaint.opened", "ticketing", ComplaintPayload(**base)):
            return
        self.complaint_times.append(opened)
        median_h = {Severity.LOW: 30, Severity.MEDIUM: 40, Severity.HIGH: 52, Severity.CRITICAL: 20}[severity]
        hours = median_h * RESOLUTION_SIZE_FACTOR[p.size] * (1 + 1.5 * stress) * rng.lognormvariate(0, 0.5)
        resolved = opened + int(max(0.5, hours) * HOUR)
        if rng.random() < 0.45:
            if rng.random() < 0.3 + 0.4 * stress and severity is not Severity.CRITICAL:
                base["severity"] = SEVERITIES[SEVERITIES.index(severity) + 1]
            base["description"] = text + "; client chased for an update"
            updated = opened + int((resolved - opened) * rng.uniform(0.2, 0.7))
            if not self.emit(updated, "complaint.updated", "ticketing", ComplaintPayload(**base)):
                return
        compensation = self._compensation(category, order)
        resolution = RESOLUTIONS[category]
        done = ComplaintPayload(**base, resolution=resolution, compensation_amount=compensation)
        if not self.emit(resolved, "complaint.resolved", "ticketing", done):
            return
        if rng.random() < 0.06 + 0.3 * stress:
            reopened = resolved + int(rng.uniform(12, 120) * HOUR)
            again = ComplaintPayload(**{**base, "description": text + "; client not satisfied with the fix"})
            if not self.emit(reopened, "complaint.reopened", "ticketing", again):
                return
            resolved = reopened + int(max(0.5, hours) * rng.uniform(0.5, 1.5) * HOUR)
            final = ComplaintPayload(
                **{**base, "description": again.description},
                resolution=resolution + "; escalated to account manager",
                compensation_amount=compensation + _money(float(compensation) * 0.5 + 50),
            )
            if not self.emit(resolved, "complaint.resolved", "ticketing", final):
                return
        if rng.random() < (0.75 if p.size == "large" else 0.45):
            self._revisit(resolved + int(rng.uniform(4, 96) * HOUR))

    def _compensation(self, category: ComplaintCategory, order: OrderPayload | None) -> Decimal:
        rng = self.rng
        if order is None:
            billing_credit = category is ComplaintCategory.BILLING and rng.random() < 0.3
            return _money(rng.uniform(50, 800)) if billing_credit else _money(0)
        if category in (ComplaintCategory.DAMAGE, ComplaintCategory.LOSS) and rng.random() < 0.6:
            share = rng.uniform(0.01, 0.08)
            return _money(float(order.goods_value) * share)
        if category is ComplaintCategory.DELAY and rng.random() < 0.2:
            return _money(float(order.service_fee) * rng.uniform(0.1, 0.5))
        return _money(0)

    def _revisit(self, t: int) -> None:
        rng = self.rng
        day = t / DAY
        drop = max(self.satisfaction_drop(day), self.service_stress(day))
        neg = 0.07 + 0.55 * drop + 0.05 * (self.incident_level(day) > 0)
        pos = max(0.05, 0.65 - 0.55 * drop)
        outcome = rng.choices(
            (RevisitOutcome.POSITIVE, RevisitOutcome.NEUTRAL, RevisitOutcome.NEGATIVE),
            weights=(pos, max(0.05, 1 - pos - neg), neg),
        )[0]
        csat = None
        if rng.random() < 0.6:
            csat = int(_clamp(round(rng.gauss(self.csat_mean - 2.2 * drop - 0.3, 0.6)), 1, 5))
        mood = {RevisitOutcome.POSITIVE: "good", RevisitOutcome.NEUTRAL: "mixed", RevisitOutcome.NEGATIVE: "bad"}
        self._feedback(t, FeedbackChannel.REVISIT_CALL, csat, None, outcome, rng.choice(SURVEY_COMMENTS[mood[outcome]]))

    def _feedback(
        self,
        t: int,
        channel: FeedbackChannel,
        csat: int | None,
        nps: int | None,
        outcome: RevisitOutcome | None,
        comment: str,
    ) -> None:
        self.n_feedback += 1
        payload = FeedbackPayload(
            feedback_id=f"FB-{self.p.client_id}-{self.n_feedback:05d}",
            csat=csat,
            nps=nps,
            channel=channel,
            revisit_outcome=outcome,
            comment=comment,
        )
        self.emit(t, "feedback.received", "crm" if channel is not FeedbackChannel.SURVEY else "survey", payload)

    def _surveys(self) -> None:
        """Periodic CSAT/NPS surveys, and quarterly site visits for large clients, while the client is active."""
        rng, p = self.rng, self.p
        active_until = self.order_times[-1] / DAY if (p.churns and self.order_times) else float(self.days)
        every = SURVEY_EVERY_DAYS[p.size]
        day = p.onboard_day + rng.uniform(5, every)
        while day < active_until:
            t = round(day * DAY)
            t = t - t % DAY + 2 * HOUR + rng.randrange(8 * HOUR)
            responds = 0.75 - 0.3 * self.satisfaction_drop(day)
            if rng.random() < responds:
                self._survey(t)
            day += every * rng.uniform(0.9, 1.1)
        if p.size == "large":
            day = p.onboard_day + rng.uniform(10, 90)
            while day < active_until:
                t = round(day * DAY)
                t = t - t % DAY + 1 * HOUR + rng.randrange(8 * HOUR)
                drop = self.satisfaction_drop(day) + 0.3 * (self.incident_level(day) > 0)
                csat = int(_clamp(round(rng.gauss(self.csat_mean - 2.0 * drop, 0.5)), 1, 5))
                outcome = RevisitOutcome.NEGATIVE if csat <= 2 else RevisitOutcome.NEUTRAL if csat == 3 else None
                mood = "bad" if csat <= 2 else "mixed" if csat == 3 else "good"
                self._feedback(t, FeedbackChannel.SITE_VISIT, csat, None, outcome, rng.choice(SURVEY_COMMENTS[mood]))
                day += rng.uniform(75, 105)

    def _survey(self, t: int) -> None:
        rng = self.rng
        day = t / DAY
        lo = bisect.bisect_left(self.complaint_times, t - 30 * DAY)
        recent = bisect.bisect_left(self.complaint_times, t) - lo
        orders = bisect.bisect_left(self.order_times, t) - bisect.bisect_left(self.order_times, t - 30 * DAY)
        pressure = recent / max(1.0, 0.03 * orders)
        penalty = min(1.5, 0.35 * max(0.0, pressure - 0.8)) + 2.3 * self.satisfaction_drop(day)
        penalty += 0.3 * (self.incident_level(day) > 0)
        csat = int(_clamp(round(rng.gauss(self.csat_mean - penalty, 0.55)), 1, 5))
        nps = int(_clamp(round(rng.gauss(self.nps_mean - 1.7 * penalty, 1.0)), 0, 10))
        u = rng.random()
        if u < 0.1:
            nps_v, csat_v = None, csat
        elif u < 0.3:
            nps_v, csat_v = nps, None
        else:
            nps_v, csat_v = nps, csat
        mood = "good" if csat >= 4 else "mixed" if csat == 3 else "bad"
        self._feedback(t, FeedbackChannel.SURVEY, csat_v, nps_v, None, rng.choice(SURVEY_COMMENTS[mood]))
