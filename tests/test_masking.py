"""Contact phone numbers and e-mails are stored masked in ClickHouse unless Settings.store_contact_pii.

The pure rule (sinks/pii.py) is tested on examples and properties; one end-to-end run then scans every
string column of every ClickHouse table, and the profile and alert topics, for the contact data of the
generated master data, after valid and rejected client records went through the real worker.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producers.admin import create_topics
from producers.generator import generate
from producers.publisher import Publisher
from schemas.events import Contact
from schemas.topics import ALERTS, INBOUND, PROFILES
from schemas.validation import parse_event
from sinks.clickhouse import connect
from sinks.pii import mask_email, mask_phone, mask_raw
from sinks.rows import Origin, columns_for, dead_letter_row, event_row
from streams.dedupe import fingerprint
from streams.intake import plan_batch

NOW = datetime(2026, 1, 1, tzinfo=UTC)


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("phone", "masked"),
    [
        ("13812345678", "138****5678"),
        ("138-1234-5678", "138-****-5678"),
        ("+86 138 1234 5678", "+86 138 **** 5678"),
        ("+86 (21) 5555-0100", "+86 (**) ****-0100"),
        ("+8613812345678", "+861******5678"),
        ("021 5555 0100", "021 **** 0100"),
        ("5555 0100", "**** 0100"),
        ("12345", "***45"),
        ("", ""),
    ],
)
def test_phone_mask(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("zhang.wei@example.com", "z***@example.com"),
        ("a@b.cn", "a***@b.cn"),
        ("li.wei+ops@acme.example", "l***@acme.example"),
        ("", ""),
    ],
)
def test_email_mask(email: str, masked: str) -> None:
    assert mask_email(email) == masked


PHONES = st.from_regex(r"\A\+?[0-9 ()\-]{5,32}\Z").filter(lambda p: len(p) <= 32)  # the contract: at most 32
EMAILS = st.from_regex(r"\A[a-z0-9._+-]{1,20}@[a-z0-9-]{1,12}\.[a-z]{2,6}\Z")


@settings(max_examples=500, deadline=None)
@given(PHONES)
def test_phone_mask_keeps_the_layout_hides_most_digits_and_is_idempotent(phone: str) -> None:
    masked = mask_phone(phone)
    assert len(masked) == len(phone)
    assert [c for c in masked if not c.isdigit() and c != "*"] == [c for c in phone if not c.isdigit()]
    digits = sum(c.isdigit() for c in phone)
    visible = sum(c.isdigit() for c in masked)
    cc = re.match(r"\+(\d+)\D", phone)
    country = len(cc.group(1)) if cc else 0
    assert visible - country <= max(7, (digits - country) // 2)  # at most 3 + 4, or half of a short number
    assert mask_phone(masked) == masked
    Contact(name="A", phone=masked)  # a masked phone still reads through the contract
    number = re.sub(r"\D", "", phone)
    if len(number) - country >= 8:
        assert number not in re.sub(r"\D", "", masked)


@settings(max_examples=300, deadline=None)
@given(EMAILS)
def test_email_mask_keeps_the_domain_and_is_idempotent(email: str) -> None:
    masked = mask_email(email)
    local, domain = email.split("@")
    assert masked == local[0] + "***@" + domain
    assert mask_email(masked) == masked
    Contact(name="A", email=masked)


# ---------------------------------------------------------------- raw bytes


def client_doc(contacts: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "event_id": "0b6f1c2e-6a53-4c7e-9a8e-1f2d3c4b5a60",
        "event_type": "client.upserted",
        "schema_version": 1,
        "occurred_at": "2025-04-28T10:15:00+08:00",
        "client_id": "C-ACME",
        "source": "crm",
        "payload": {"name": "Acme", "region": "east", "industry": "ecommerce", "contacts": contacts},
    }


CONTACTS = st.lists(
    st.fixed_dictionaries({"name": st.sampled_from(["Li Wei", "王芳"]), "phone": PHONES, "email": EMAILS}),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(CONTACTS, st.booleans(), st.sampled_from([None, 2]))
def test_mask_raw_masks_contacts_and_leaves_every_other_byte(contacts: list[dict], ascii_only: bool, indent) -> None:
    doc = client_doc(contacts)
    raw = json.dumps(doc, ensure_ascii=ascii_only, indent=indent).encode()
    masked = mask_raw(raw)
    expected = copy.deepcopy(doc)
    for c in expected["payload"]["contacts"]:
        c["phone"], c["email"] = mask_phone(c["phone"]), mask_email(c["email"])
    assert json.loads(masked) == expected
    # in place: outside the values, the bytes are the original ones
    assert re.sub(rb'"(phone|email)": "[^"]*"', b"", masked) == re.sub(rb'"(phone|email)": "[^"]*"', b"", raw)
    for c in contacts:
        assert c["email"].encode() not in masked
    assert mask_raw(masked) == masked


def test_mask_raw_sees_through_escaped_keys_numbers_and_broken_records() -> None:
    escaped = b'{"payload": {"contacts": [{"ph\\u006fne": "13812345678", "\\u0065mail": "zhang.wei@example.com"}]}}'
    assert json.loads(mask_raw(escaped)) == {
        "payload": {"contacts": [{"phone": "138****5678", "email": "z***@example.com"}]}
    }
    assert mask_raw(b'{"phone": 13812345678}') == b'{"phone": "138****5678"}'
    assert mask_raw(b'{"contacts": [{"phone": "13812345678", "email": "zhang.wei@exa') == (
        b'{"contacts": [{"phone": "138****5678", "email": "z***@exa"'
    )
    assert mask_raw(b'\xff{"email": "zhang.wei@example.com"}') == b'\xff{"email": "z***@example.com"}'
    plain = b'{"event_type": "order.created", "payload": {"units": 5}}'
    assert mask_raw(plain) is plain  # nothing to mask: the very same bytes


# ---------------------------------------------------------------- rows


def _origin(doc: dict[str, Any], **kw: Any) -> Origin:
    return Origin(
        kw.get("topic", INBOUND["client"].name),
        0,
        7,
        kw.get("key", doc["client_id"].encode()),
        json.dumps(doc).encode(),
    )


CONTACT = {"name": "Li Wei", "role": "ops", "phone": "+86 138 1234 5678", "email": "li.wei@acme.example"}


def test_client_rows_store_contacts_masked_unless_allowed() -> None:
    origin = _origin(client_doc([CONTACT]))
    event = parse_event(origin.value)
    columns = columns_for("client")

    _, row = event_row(event, origin)  # type: ignore[arg-type]
    at = dict(zip(columns, row, strict=True))
    assert json.loads(at["contacts_json"]) == [CONTACT | {"phone": "+86 138 **** 5678", "email": "l***@acme.example"}]
    assert "1234 5678" not in at["raw_json"] and "li.wei@" not in at["raw_json"]
    assert json.loads(at["raw_json"])["payload"]["contacts"][0]["phone"] == "+86 138 **** 5678"

    _, row = event_row(event, origin, store_contact_pii=True)  # type: ignore[arg-type]
    at = dict(zip(columns, row, strict=True))
    assert json.loads(at["contacts_json"]) == [CONTACT]
    assert at["raw_json"] == origin.value.decode()


def test_a_masked_raw_event_reads_back_with_the_same_fingerprint() -> None:
    """Rebuilding from raw_json (replay, backfill) gives the same event identity as the original."""
    origin = _origin(client_doc([CONTACT]))
    event = parse_event(origin.value)
    _, row = event_row(event, origin)  # type: ignore[arg-type]
    again = parse_event(dict(zip(columns_for("client"), row, strict=True))["raw_json"])
    assert not hasattr(again, "reason"), again
    assert fingerprint(again) == fingerprint(event)  # type: ignore[arg-type]


def test_dead_letters_store_contacts_masked_unless_allowed() -> None:
    doc = client_doc([CONTACT])
    doc["payload"]["region"] = 5  # rejected for that; the contacts must not leak into dead_letters
    origin = _origin(doc)
    plan = plan_batch([origin], NOW)
    assert [r.reason for r in plan.rejected] == ["schema_violation"]
    (row,) = plan.rows["dead_letters"]
    assert b"1234 5678" not in row[4] and b"li.wei@" not in row[4]
    assert json.loads(row[4])["payload"]["contacts"][0]["email"] == "l***@acme.example"
    assert dead_letter_row(origin, "x", "y", NOW, store_contact_pii=True)[4] == origin.value


# ---------------------------------------------------------------- end to end


def _needles(events: list[Any]) -> set[str]:
    """The contact data as published, in the forms a leak could take."""
    out: set[str] = set()
    for e in events:
        if e.event_type != "client.upserted":
            continue
        for c in e.payload.contacts:
            digits = re.sub(r"\D", "", c.phone)
            out |= {c.phone, digits, digits[2:], c.phone[-9:], digits[-8:], c.email, c.email.split("@")[0] + "@"}
    return out


@pytest.mark.integration
def test_no_contact_phone_or_email_is_stored_unmasked_anywhere(settings, worker_factory) -> None:
    from kafka import KafkaConsumer

    history = generate(clients=12, days=45, seed=17)
    events = history.events
    upserts = [json.loads(e.model_dump_json()) for e in events if e.event_type == "client.upserted"]
    # rejected client records carrying contacts: wrong topic, no key, a broken field, cut short
    template = upserts[0]
    broken = copy.deepcopy(template)
    broken["payload"]["industry"] = "mining"
    bad = [
        (INBOUND["order"].name, template["client_id"].encode(), json.dumps(template).encode()),
        (INBOUND["client"].name, None, json.dumps(upserts[1]).encode()),
        (INBOUND["client"].name, template["client_id"].encode(), json.dumps(broken).encode()),
        (INBOUND["client"].name, template["client_id"].encode(), json.dumps(upserts[2]).encode()[:-40]),
    ]
    needles = _needles(events)
    assert len(needles) > 50
    assert any(n.encode() in v for n in needles for _, _, v in bad)  # the rejected records do carry contacts

    create_topics(settings.kafka_bootstrap, settings.partitions)
    worker = worker_factory().start()
    with Publisher(settings.kafka_bootstrap) as pub:
        for e in events:
            pub.publish_validated(e)
        for topic, key, value in bad:
            pub.publish_unchecked(topic, key, value)
    worker.wait_committed(len(events) + len(bad))
    assert worker.stop() == 0

    client = connect(settings.clickhouse_dsn, settings.clickhouse_database)
    try:
        columns = client.query(
            "SELECT c.table, c.name FROM system.columns AS c INNER JOIN system.tables AS t "
            "ON c.database = t.database AND c.table = t.name "
            "WHERE c.database = currentDatabase() AND t.engine NOT LIKE '%View' AND c.type LIKE '%String%'"
        ).result_rows
        leaks = []
        ordered = sorted(needles)
        for table, column in columns:
            for i in range(0, len(ordered), 200):  # multiSearchAny takes at most 255 needles
                n = client.query(
                    f"SELECT countIf(multiSearchAny(toString(`{column}`), {{needles:Array(String)}})) FROM `{table}`",
                    parameters={"needles": ordered[i : i + 200]},
                ).result_rows[0][0]
                if n:
                    leaks.append((table, column, n))
        # the scan looks at real data: the masked contacts are there, in the raw table and the dead letters
        stored = client.query("SELECT contacts_json FROM client_events").result_rows
        dead = client.query("SELECT reason, raw_value FROM dead_letter_events").result_rows
    finally:
        client.close()
    assert len(columns) > 30
    assert leaks == []
    assert len(stored) == len(upserts)
    masked_tails = {c.phone[-4:] for e in events if e.event_type == "client.upserted" for c in e.payload.contacts}
    assert masked_tails <= {c["phone"][-4:] for (js,) in stored for c in json.loads(js)}
    assert all("****" in c["phone"] and "***@" in c["email"] for (js,) in stored for c in json.loads(js))
    assert sorted(r for r, _ in dead) == sorted(["wrong_topic", "missing_key", "schema_violation", "malformed_json"])
    assert all("***" in v for _, v in dead)

    # ... and nothing published for consumers carries them either
    consumer = KafkaConsumer(
        PROFILES.name, ALERTS.name, bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest",
        consumer_timeout_ms=4000,
    )  # fmt: skip
    published = [m.value for m in consumer]
    consumer.close()
    assert published
    assert not [n for n in needles if any(n.encode() in v for v in published)]
