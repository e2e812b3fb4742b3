"""producers.files: JSONL and mapped CSV input -> LineResults with line numbers and field-naming errors."""

from __future__ import annotations

import io
import json
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from producers.files import (
    CsvMapping,
    LineResult,
    detect_format,
    load_mapping,
    read_csv,
    read_events,
    read_jsonl,
)
from schemas.events import SCHEMA_VERSION, OrderCancelled, OrderCreated, ServiceType

DATA = Path(__file__).parent / "data"
SAMPLE_CSV = DATA / "orders_export.csv"
SAMPLE_MAPPING = DATA / "orders_mapping.json"
SHANGHAI = timedelta(hours=8)


def order_event(**overrides: object) -> dict:
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "order.created",
        "schema_version": 1,
        "occurred_at": "2024-05-01T08:30:00+08:00",
        "client_id": "C-ACME",
        "source": "oms",
        "payload": {
            "order_id": "SO-1",
            "warehouse_id": "WH-1",
            "service_type": "outbound",
            "units": 5,
            "service_fee": "12.50",
        },
    }
    payload = overrides.pop("payload", None)
    event.update(overrides)
    if payload is not None:
        event["payload"] = {**event["payload"], **payload}
    return event


def line(event: dict) -> str:
    return json.dumps(event, ensure_ascii=False)


def mapping(**overrides: object) -> CsvMapping:
    raw = json.loads(SAMPLE_MAPPING.read_text(encoding="utf-8"))
    raw.update(overrides)
    return CsvMapping.model_validate(raw)


def csv_results(text: str, m: CsvMapping | None = None) -> list[LineResult]:
    return list(read_csv(io.StringIO(text, newline=""), m or mapping()))


HEADER = "order_no,customer_code,order_time,warehouse,service,qty,weight_kg,goods_value,fee,currency,dest_region,remark"


def row(**cells: str) -> str:
    values = {
        "order_no": "SO-1",
        "customer_code": "C-ACME",
        "order_time": "2024-05-01 08:30:00",
        "warehouse": "WH-1",
        "service": "outbound",
        "qty": "5",
        "weight_kg": "1.5",
        "goods_value": "100.00",
        "fee": "12.50",
        "currency": "CNY",
        "dest_region": "CN-SH",
        "remark": "",
    }
    values.update(cells)
    return ",".join(values[name] for name in HEADER.split(","))


# ---------------------------------------------------------------- detect_format


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("events.jsonl", "jsonl"),
        ("events.ndjson", "jsonl"),
        ("dir.v1/events.json", "jsonl"),
        ("EXPORT.CSV", "csv"),
        ("/tmp/orders.csv", "csv"),
        ("-", "jsonl"),
    ],
)
def test_detect_format(path: str, fmt: str) -> None:
    assert detect_format(path) == fmt


@pytest.mark.parametrize("path", ["orders.txt", "orders", "orders.csv.gz", "orders.xlsx"])
def test_detect_format_rejects_unknown_extensions(path: str) -> None:
    with pytest.raises(ValueError, match="cannot tell the format") as info:
        detect_format(path)
    assert "\n" not in str(info.value)
    assert path in str(info.value)


# ---------------------------------------------------------------- JSONL


def test_jsonl_good_and_bad_lines_have_their_line_numbers_and_field_names() -> None:
    good = order_event()
    lines = [
        line(good),  # 1
        "",  # 2 blank: skipped
        '{"event_type": "order.created", ',  # 3 malformed
        line(order_event(event_type="order.shipped")),  # 4 unknown type
        line(order_event(occurred_at="2024-05-01T08:30:00")),  # 5 naive
        "   ",  # 6 whitespace only: skipped
        line(order_event(payload={"units": -3})),  # 7 negative units
        line({k: v for k, v in order_event().items() if k != "client_id"}),  # 8 missing client_id
        line(order_event(payload={"units": "5"})),  # 9 "5" is not an integer in strict JSON
        line(order_event(payload={"order_id": "SO-2"})),  # 10 good
    ]
    data = ("\n".join(lines) + "\n").encode()
    results = list(read_jsonl(io.BytesIO(data)))

    assert [r.line for r in results] == [1, 3, 4, 5, 7, 8, 9, 10]
    by_line = {r.line: r for r in results}
    assert by_line[1].ok and by_line[1].error is None
    assert isinstance(by_line[1].event, OrderCreated)
    assert str(by_line[1].event.event_id) == good["event_id"]
    assert by_line[10].ok and by_line[10].event.payload.order_id == "SO-2"

    assert by_line[3].event is None and by_line[3].reason == "malformed_json"
    assert "Invalid JSON" in by_line[3].error
    assert by_line[4].reason == "unknown_event_type"
    assert by_line[4].error.startswith("event_type: ") and "order.shipped" in by_line[4].error
    assert by_line[5].reason == "naive_timestamp"
    assert by_line[5].error == "occurred_at: Input should have timezone info"
    assert by_line[7].error == "payload.units: Input should be greater than or equal to 0"
    assert by_line[8].error == "client_id: Field required"
    assert by_line[8].reason == "invalid_client_id"
    assert by_line[9].error == "payload.units: Input should be a valid integer"


def test_jsonl_accepts_text_streams_crlf_and_a_bom() -> None:
    text = "\ufeff" + line(order_event()) + "\r\n\r\n" + line(order_event(payload={"order_id": "SO-9"})) + "\r\n"
    results = list(read_jsonl(io.StringIO(text, newline="")))
    assert [(r.line, r.ok) for r in results] == [(1, True), (3, True)]
    assert results[1].event.payload.order_id == "SO-9"

    raw = b"\xef\xbb\xbf" + line(order_event()).encode() + b"\r\n"
    [result] = read_jsonl(io.BytesIO(raw))
    assert result.ok


def test_jsonl_invalid_utf8_is_reported_and_reading_goes_on() -> None:
    data = b'{"client_id": "\xff"}\n' + line(order_event()).encode() + b"\n"
    first, second = read_jsonl(io.BytesIO(data))
    assert (first.line, first.reason) == (1, "not_utf8")
    assert "UTF-8" in first.error
    assert second.line == 2 and second.ok


def test_read_events_reads_a_jsonl_file(tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text(line(order_event()) + "\n\n" + line(order_event(payload={"units": 1.5})) + "\n", encoding="utf-8")
    results = list(read_events(str(path)))
    assert [(r.line, r.ok) for r in results] == [(1, True), (3, False)]
    assert results[1].error == "payload.units: Input should be a valid integer"


def test_read_events_reads_stdin_for_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    stdin = io.TextIOWrapper(io.BytesIO((line(order_event()) + "\n{oops\n").encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    results = list(read_events("-"))
    assert [(r.line, r.ok) for r in results] == [(1, True), (2, False)]
    assert not stdin.buffer.closed  # stdin is not ours to close


# ---------------------------------------------------------------- CSV: the sample export


def test_sample_export_becomes_order_created_events() -> None:
    results = list(read_events(str(SAMPLE_CSV), mapping=load_mapping(str(SAMPLE_MAPPING))))

    assert [r.error for r in results] == [None] * 4
    # header is line 1; the second record's quoted remark spans lines 3-4
    assert [r.line for r in results] == [2, 3, 5, 6]
    events = [r.event for r in results]
    assert all(isinstance(e, OrderCreated) for e in events)
    assert [e.payload.order_id for e in events] == ["SO-240501-001", "SO-240501-002", "SO-240501-003", "SO-240502-001"]
    first = events[0]
    assert first.source == "oms-export"
    assert first.schema_version == SCHEMA_VERSION
    assert first.client_id == "C-ACME"
    assert first.payload.units == 120
    assert first.payload.weight_kg == 35.5
    assert first.payload.volume_m3 == 0.0  # not in the export: contract default
    assert first.payload.currency == "CNY"  # empty cell: filled by the constant
    assert events[3].payload.currency == "USD"
    assert events[1].payload.service_type is ServiceType.OUTBOUND  # value_maps: 出库 -> outbound
    assert events[2].payload.destination_region == ""  # empty cell: field omitted, default applies


def test_csv_naive_timestamps_get_the_mapping_timezone() -> None:
    events = [r.event for r in read_events(str(SAMPLE_CSV), mapping=load_mapping(str(SAMPLE_MAPPING)))]
    # 2024-05-01 08:30:00 in Asia/Shanghai is 00:30 UTC
    assert events[0].occurred_at == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)
    assert events[0].occurred_at.utcoffset() == SHANGHAI
    # an explicit offset in the cell is kept as is
    assert events[2].occurred_at == datetime(2024, 5, 1, 15, 45, tzinfo=UTC)
    # local midnight crosses the UTC date line backwards
    assert events[3].occurred_at == datetime(2024, 5, 1, 16, 5, tzinfo=UTC)


def test_csv_money_stays_exact_decimal() -> None:
    events = [r.event for r in read_events(str(SAMPLE_CSV), mapping=load_mapping(str(SAMPLE_MAPPING)))]
    fees = [e.payload.service_fee for e in events]
    assert all(type(f) is Decimal for f in fees)
    assert [str(f) for f in fees] == ["360.50", "24.10", "1875.00", "99.99"]
    assert sum(fees) == Decimal("2359.59")
    assert str(events[1].payload.goods_value) == "980.10"
    assert events[1].model_dump(mode="json")["payload"]["service_fee"] == "24.10"


def test_csv_event_ids_are_deterministic_and_distinct() -> None:
    m = load_mapping(str(SAMPLE_MAPPING))
    first = [r.event.event_id for r in read_events(str(SAMPLE_CSV), mapping=m)]
    second = [r.event.event_id for r in read_events(str(SAMPLE_CSV), mapping=load_mapping(str(SAMPLE_MAPPING)))]
    assert first == second  # re-importing the same export publishes the same event_ids
    assert len(set(first)) == len(first) == 4
    assert all(i.version == 5 for i in first)


def test_csv_event_id_ignores_row_position_and_unmapped_columns() -> None:
    a = row(order_no="SO-1", remark="first import")
    b = row(order_no="SO-2", order_time="2024-05-01 10:00:00")
    one = {r.event.payload.order_id: r.event.event_id for r in csv_results(f"{HEADER}\n{a}\n{b}\n")}
    a_again = row(order_no="SO-1", remark="re-exported with another remark")
    two = {r.event.payload.order_id: r.event.event_id for r in csv_results(f"{HEADER}\n{b}\n\n{a_again}\n")}
    assert one == two
    # the same order at the same instant written with an offset instead of a local time: same event
    aware = row(order_no="SO-1", order_time="2024-05-01T00:30:00+00:00")
    [three] = csv_results(f"{HEADER}\n{aware}\n")
    assert three.event.event_id == one["SO-1"]


def test_csv_event_id_column_is_used_when_present() -> None:
    given = uuid.uuid4()
    m = mapping(columns={**mapping().columns, "event_id": "remark"})
    [explicit, derived] = csv_results(f"{HEADER}\n{row(remark=str(given))}\n{row(order_no='SO-2')}\n", m)
    assert explicit.event.event_id == given
    assert derived.ok and derived.event.event_id.version == 5


def test_csv_duplicate_rows_are_reported_once_published() -> None:
    results = csv_results(f"{HEADER}\n{row()}\n{row(order_no='SO-2')}\n{row(remark='same order again')}\n")
    assert [(r.line, r.ok) for r in results] == [(2, True), (3, True), (4, False)]
    assert results[2].reason == "duplicate"
    assert results[2].error.startswith("duplicate of line 2: same event_id ")
    assert "payload.order_id" in results[2].error


def test_csv_updates_of_one_order_are_distinct_events_unless_id_fields_say_otherwise() -> None:
    text = f"{HEADER}\n{row(qty='5')}\n{row(qty='7', order_time='2024-05-01 11:00:00')}\n"
    first, later = csv_results(text, mapping(event_type="order.updated"))
    assert first.ok and later.ok
    assert first.event.event_id != later.event.event_id  # occurred_at is part of the default key
    assert later.event.payload.units == 7

    by_order = mapping(event_type="order.updated", id_fields=["event_type", "client_id", "payload.order_id"])
    first, later = csv_results(text, by_order)
    assert first.ok
    assert later.error.startswith("duplicate of line 2: same event_id ")
    assert later.error.endswith("(from event_type, client_id, payload.order_id)")


# ---------------------------------------------------------------- CSV: bad cells


def test_csv_bad_cells_are_reported_with_line_numbers_and_columns() -> None:
    text = "\n".join(
        [
            HEADER,  # 1
            row(order_no="SO-1", remark='"multi\nline"'),  # 2-3
            row(order_no="SO-2", qty="abc"),  # 4
            "",  # 5 blank
            row(order_no="SO-3", fee="12.5x", weight_kg="heavy"),  # 6
            row(order_no="SO-4", qty="-3"),  # 7
            row(order_no="SO-5", fee="1.234"),  # 8
            row(order_no="SO-6", order_time="yesterday"),  # 9
            row(order_no="SO-7", service="teleport"),  # 10
            row(order_no="SO-8", customer_code="  "),  # 11
            row(order_no="SO-9") + ",extra",  # 12
            row(order_no="SO-10", qty="12.0"),  # 13
            row(order_no="SO-11", order_time="1999-12-31 23:00:00"),  # 14
            row(order_no="SO-12"),  # 15
        ]
    )
    results = {r.line: r for r in csv_results(text + "\n")}
    assert sorted(results) == [2, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    assert results[2].ok and results[15].ok
    assert results[4].error == "column qty (payload.units): 'abc' is not an integer"
    assert results[4].reason == "bad_cell"
    assert results[6].error == (
        "column weight_kg (payload.weight_kg): 'heavy' is not a finite number; "
        "column fee (payload.service_fee): '12.5x' is not a decimal number"
    )
    assert results[7].error == "payload.units: Input should be greater than or equal to 0"
    assert results[8].error == "payload.service_fee: Decimal input should have no more than 2 decimal places"
    assert results[9].error.startswith("column order_time (occurred_at): 'yesterday' is not a timestamp")
    assert results[10].error == (
        "column service (payload.service_type): 'teleport' is not one of storage, inbound, outbound, delivery"
    )
    assert results[11].error == "client_id: Field required"
    assert results[12].error == "13 cells but the header has 12 columns"
    assert results[13].error == "column qty (payload.units): '12.0' is not an integer"
    assert results[14].error == "occurred_at: occurred_at must lie between 2000 and 2100"
    assert all(r.event is None for n, r in results.items() if n not in (2, 15))


def test_csv_naive_timestamp_without_timezone_is_an_error() -> None:
    m = mapping(timezone=None)
    naive, aware = csv_results(
        f"{HEADER}\n{row()}\n{row(order_no='SO-2', order_time='2024-05-01 08:30:00+08:00')}\n", m
    )
    assert naive.error == (
        "column order_time (occurred_at): '2024-05-01 08:30:00' has no UTC offset and the mapping sets no timezone"
    )
    assert aware.ok and aware.event.occurred_at == datetime(2024, 5, 1, 0, 30, tzinfo=UTC)


def test_csv_header_missing_a_mapped_column_is_one_error() -> None:
    header = HEADER.replace(",qty,", ",quantity,")
    results = csv_results(f"{header}\n{row()}\n{row(order_no='SO-2')}\n")
    assert len(results) == 1
    assert results[0].line == 1 and results[0].reason == "bad_header"
    assert results[0].error == "header: missing mapped columns qty (payload.units)"


def test_csv_strptime_format_booleans_and_nested_fields() -> None:
    m = CsvMapping.model_validate(
        {
            "event_type": "delivery.delivered",
            "source": "tms-export",
            "columns": {
                "client_id": "client",
                "occurred_at": "done",
                "payload.delivery_id": "delivery",
                "payload.order_id": "order",
                "payload.promised_by": "promised",
                "payload.delivered_at": "done",
                "payload.units": "units",
                "payload.temperature_excursion": "excursion",
            },
            "timezone": "Europe/Berlin",
            "timestamp_format": "%d.%m.%Y %H:%M",
        }
    )
    text = (
        "client,delivery,order,promised,done,units,excursion\n"
        "C-1,D-1,SO-1,01.07.2024 12:00,01.07.2024 11:30,10,yes\n"
        "C-1,D-2,SO-2,15.01.2024 12:00,15.01.2024 12:45,10,0\n"
        "C-1,D-3,SO-3,2024-01-15 12:00,15.01.2024 12:45,10,maybe\n"
    )
    summer, winter, bad = csv_results(text, m)
    assert summer.event.payload.delivered_at == datetime(2024, 7, 1, 9, 30, tzinfo=UTC)  # CEST, +02:00
    assert summer.event.payload.temperature_excursion is True
    assert winter.event.payload.delivered_at == datetime(2024, 1, 15, 11, 45, tzinfo=UTC)  # CET, +01:00
    assert winter.event.payload.temperature_excursion is False
    assert bad.line == 4
    assert bad.error == (
        "column promised (payload.promised_by): '2024-01-15 12:00' is not a timestamp (%d.%m.%Y %H:%M); "
        "column excursion (payload.temperature_excursion): 'maybe' is not a boolean (true/false, 1/0, yes/no)"
    )

    window = mapping(
        columns={
            **mapping().columns,
            "payload.requested_window.start": "remark",
            "payload.requested_window.end": "remark",
        }
    )
    [result] = csv_results(f"{HEADER}\n{row(remark='2024-05-03 09:00')}\n", window)
    assert result.event.payload.requested_window.start == datetime(2024, 5, 3, 1, 0, tzinfo=UTC)


def test_csv_event_type_from_a_column() -> None:
    m = mapping(
        columns={**mapping().columns, "event_type": "status", "payload.reason": "remark"},
        value_maps={"event_type": {"NEW": "order.created", "CANCELLED": "order.cancelled"}},
    )
    header = HEADER + ",status"
    text = (
        f"{header}\n{row()},NEW\n{row(remark='customer withdrew', qty='')},CANCELLED\n"
        f"{row(order_no='SO-3')},LOST\n{row(order_no='SO-4')},\n"
    )
    created, cancelled, unknown, default = csv_results(text, m)
    assert isinstance(created.event, OrderCreated)
    assert isinstance(cancelled.event, OrderCancelled)
    assert cancelled.event.payload.reason == "customer withdrew"
    assert cancelled.event.event_id != created.event.event_id  # same order, different event type
    assert unknown.error == "column status (event_type): 'LOST' is not a known event type"
    assert isinstance(default.event, OrderCreated)  # empty cell: the mapping's constant event_type


def test_csv_other_encodings(tmp_path: Path) -> None:
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{HEADER}\n{row(service='出库', remark='易碎')}\n".encode("gb18030"))
    [result] = read_events(str(path), mapping=mapping(encoding="gb18030"))
    assert result.ok and result.event.payload.service_type is ServiceType.OUTBOUND

    [wrong] = read_events(str(path), mapping=mapping())
    assert wrong.reason == "bad_encoding" and "encoding" in wrong.error


# ---------------------------------------------------------------- mapping files


def test_load_mapping_json_and_toml(tmp_path: Path) -> None:
    m = load_mapping(str(SAMPLE_MAPPING))
    assert m.timezone == "Asia/Shanghai"
    assert m.columns["payload.units"] == "qty"

    toml = tmp_path / "mapping.toml"
    toml.write_text(
        'source = "oms"\ntimezone = "Asia/Shanghai"\n'
        "[columns]\n"
        '"client_id" = "customer_code"\n"occurred_at" = "order_time"\n"payload.order_id" = "order_no"\n'
        '"payload.warehouse_id" = "warehouse"\n"payload.units" = "qty"\n"payload.service_fee" = "fee"\n'
        "[constants]\n"
        '"payload.service_type" = "outbound"\n"payload.currency" = "CNY"\n',
        encoding="utf-8",
    )
    from_toml = load_mapping(str(toml))
    [result] = csv_results(f"{HEADER}\n{row(service='')}\n", from_toml)
    assert result.ok and result.event.source == "oms"
    assert result.event.payload.service_type is ServiceType.OUTBOUND


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be an object"),
        ('{"columns": {"client_id": "c", "occurred_at": "t"}, "event_type": "order.shipped"}', "order.shipped"),
        ('{"columns": {"client_id": "c", "occurred_at": "t"}, "timezone": "Mars/Olympus"}', "Mars/Olympus"),
        ('{"columns": {"client_id": "c", "occurred_at": "t"}, "colums": {}}', "colums"),
        ('{"event_type": "order.cancelled", "columns": {"client_id": "c", "occurred_at": "t", "payload.nope": "x"}}',
         "'payload.nope' is not a scalar field of order.cancelled"),
        ('{"event_type": "order.cancelled", "columns": {"client_id": "c", "occurred_at": "t"}}',
         "payload.order_id is required by order.cancelled"),
        ('{"event_type": "order.cancelled", "columns": {"occurred_at": "t", "payload.order_id": "o"}}',
         "client_id needs a column or a constant"),
        ('{"columns": {"client_id": "c", "occurred_at": "t", "payload.requested_window": "w"}}',
         "payload.requested_window: has type TimeRange, which a CSV cell cannot fill"),
        ('{"event_type": "order.cancelled", "columns": {"client_id": "c", "occurred_at": "t", "payload.order_id": "o"},'
         ' "constants": {"event_id": "not-a-uuid"}}', "constants: event_id: 'not-a-uuid' is not a UUID"),
        ('{"columns": {"client_id": "c", "occurred_at": "t"}, "value_maps": {"payload.units": {}}}',
         "'payload.units' is not mapped to a column"),
        ('{"columns": {"client_id": "c", "occurred_at": "t"}, "constants": {"source": "x"}}', "top level"),
    ],
)  # fmt: skip
def test_bad_mapping_files_raise_one_line_value_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mapping.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        load_mapping(str(path))
    text = str(info.value)
    assert message in text
    assert text.startswith(f"mapping {path}: ")
    assert "\n" not in text


def test_bad_constant_for_the_field_type(tmp_path: Path) -> None:
    raw = json.loads(SAMPLE_MAPPING.read_text(encoding="utf-8"))
    raw["constants"]["payload.units"] = "many"
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match=r"constants: payload.units: 'many' is not an integer"):
        load_mapping(str(path))


def test_missing_and_invalid_toml_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_mapping(str(tmp_path / "nope.json"))
    bad = tmp_path / "m.toml"
    bad.write_text("columns = [", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_mapping(str(bad))


# ---------------------------------------------------------------- read_events arguments


def test_read_events_argument_errors_raise_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a column mapping"):
        read_events(str(SAMPLE_CSV))
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        read_events(str(SAMPLE_CSV), fmt="xml")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_events("orders.txt")
    with pytest.raises(FileNotFoundError):
        read_events(str(tmp_path / "missing.jsonl"))
    # an explicit format overrides the extension
    path = tmp_path / "export.txt"
    path.write_text(SAMPLE_CSV.read_text(encoding="utf-8"), encoding="utf-8")
    assert len([r for r in read_events(str(path), fmt="csv", mapping=load_mapping(str(SAMPLE_MAPPING))) if r.ok]) == 4
