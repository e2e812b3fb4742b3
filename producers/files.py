"""Read upstream files (JSONL, or CSV exports plus a column mapping) into validated events, line by line.

Used by ``clientpulse publish PATH|-``: every record becomes a `LineResult` carrying its 1-based line number and
either a validated event or a precise error naming the field, so the caller can report bad lines, show progress
and publish only the good ones. Nothing here talks to Kafka or prints.

JSONL (``.jsonl``, ``.ndjson``, ``.json``, or ``-`` for stdin)
    One JSON event per line, validated by `schemas.validation.parse_event` with the contract's strict JSON rules
    (``"5"`` is not an integer, timestamps need an offset). Blank lines are skipped but still counted.

CSV (``.csv``) with a `CsvMapping`
    For order-history exports from an OMS and the like. Each record (the header is line 1; a record's line is the
    physical line it starts on) is turned into an event as follows:

    * every mapped cell is stripped; an empty cell omits the field (so the contract's default applies), unless
      ``constants`` gives a value for that field, which then fills in;
    * the cell (after ``value_maps``) is converted to the type the contract declares for the field: integers,
      decimals (money is parsed straight into `Decimal`, so ``"12.50"`` stays exactly ``12.50``), floats, booleans
      (true/false, 1/0, yes/no, y/n, t/f), enums, UUIDs, dates, and timestamps — ISO 8601 unless
      ``timestamp_format`` gives a `strptime` format. A naive timestamp gets the mapping's ``timezone`` (CSV
      exports usually carry local times); a naive timestamp without a configured timezone is an error;
    * ``schema_version`` defaults to `schemas.events.SCHEMA_VERSION`, ``source`` and ``event_type`` to the
      mapping's constants;
    * without an ``event_id`` column (or with an empty cell) the event_id is derived deterministically: uuid5 over
      the ``id_fields`` values, by default event_type, client_id, the entity id of the family (``payload.order_id``
      for orders, ``delivery_id``, ``complaint_id``, ``feedback_id``) and occurred_at (normalised to UTC, so that
      several ``order.updated`` rows of one order stay distinct). Without an entity id the whole raw row is hashed.
      Re-importing the same export therefore publishes the same event_ids, and the pipeline's dedup makes the
      re-import idempotent. Two rows of one file that yield the same event_id are reported (the later one as an
      error): usually the export has one row per order *line* and needs aggregating first;
    * the resulting dict is validated against the (strict) contract; errors read like
      ``payload.units: Input should be greater than or equal to 0``, conversion errors name the column too:
      ``column qty (payload.units): 'abc' is not an integer``.

Mapping file format (JSON, or TOML when the file ends in ``.toml``)::

    {
      "event_type": "order.created",          // constant event type (default "order.created")
      "source": "oms-export",                  // constant envelope source (default "csv-import")
      "columns": {                             // field -> CSV column; "payload.x.y" reaches nested fields
        "client_id": "customer_code",
        "occurred_at": "order_time",
        "payload.order_id": "order_no",
        "payload.warehouse_id": "warehouse",
        "payload.service_type": "service",
        "payload.units": "qty",
        "payload.weight_kg": "weight_kg",
        "payload.goods_value": "goods_value",
        "payload.service_fee": "fee",
        "payload.currency": "currency",
        "payload.destination_region": "dest_region"
      },
      "constants": {"payload.currency": "CNY"},   // fields missing from the export, or filling empty cells
      "value_maps": {"payload.service_type": {"出库": "outbound"}},  // optional: raw cell -> contract value
      "timezone": "Asia/Shanghai",             // IANA zone applied to naive CSV timestamps (optional)
      "timestamp_format": null,                // strptime format; null = ISO 8601
      "date_format": null,                     // strptime format for date fields; null = ISO (YYYY-MM-DD)
      "id_fields": null,                       // fields hashed into a derived event_id; null = default above
      "delimiter": ",",
      "encoding": "utf-8-sig"                  // e.g. "gb18030" for exports from Chinese Excel
    }

(JSON has no comments; they are explanations here.) To take the event type from a column, map it like any other
field: ``"columns": {"event_type": "doc_type", ...}`` with ``"value_maps": {"event_type": {"NEW":
"order.created", "CANCELLED": "order.cancelled"}}``; mapped payload fields that the row's event type does not have
are then left out of that row. See ``tests/data/orders_export.csv`` and ``tests/data/orders_mapping.json``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import sys
import tomllib
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import IO, Annotated, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime, ValidationError, model_validator

from schemas.events import EVENT_ADAPTER, EVENT_MODELS, EVENT_TYPES, SCHEMA_VERSION, Envelope, family_of
from schemas.validation import Rejection, classify, describe, parse_event

__all__ = [
    "CSV_EVENT_NAMESPACE",
    "CsvMapping",
    "LineResult",
    "detect_format",
    "load_mapping",
    "read_csv",
    "read_events",
    "read_jsonl",
]

FORMATS = ("jsonl", "csv")
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv"}

CSV_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:clientpulse:csv-import")
"""uuid5 namespace of derived event_ids. Changing it would re-publish every re-imported export as new events."""

_ENVELOPE_FIELDS = ("event_id", "event_type", "schema_version", "occurred_at", "client_id", "source")
_ENTITY_ID = {"order": "order_id", "delivery": "delivery_id", "complaint": "complaint_id", "feedback": "feedback_id"}
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


@dataclass(frozen=True)
class LineResult:
    """One input record: a validated `event`, or an `error` naming the field (exactly one of the two is set)."""

    line: int
    """1-based line number in the input (CSV: the physical line the record starts on; the header is line 1)."""
    event: Envelope | None
    error: str | None
    reason: str | None = None
    """Short machine-friendly code of the error (``malformed_json``, ``naive_timestamp``, ``bad_cell``, ...)."""

    @property
    def ok(self) -> bool:
        return self.event is not None


# ---------------------------------------------------------------- format detection and JSONL


def detect_format(path: str) -> str:
    """``"jsonl"`` or ``"csv"`` from the file extension; ``"-"`` (stdin) is JSONL."""
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        known = ", ".join(_EXTENSIONS)
        raise ValueError(
            f"cannot tell the format of {path!r} from its extension {suffix or '(none)'!r}: expected one of {known}"
        ) from None


def read_jsonl(stream: IO[bytes] | IO[str]) -> Iterator[LineResult]:
    """Validate one event per line; blank lines are skipped (not errors) but counted for line numbers."""
    for number, raw in enumerate(stream, start=1):
        if isinstance(raw, bytes):
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield LineResult(number, None, f"not valid UTF-8: {exc}", "not_utf8")
                continue
        else:
            text = raw.removeprefix("\ufeff") if number == 1 else raw
        if not text.strip():
            continue
        result = parse_event(text)
        if isinstance(result, Rejection):
            yield LineResult(number, None, result.detail, result.reason)
        else:
            yield LineResult(number, result, None)


# ---------------------------------------------------------------- CSV mapping


class CsvMapping(BaseModel):
    """How the rows of a CSV export become events (see the module docstring for the file format)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_type: str = "order.created"
    source: Annotated[str, Field(min_length=1, max_length=64)] = "csv-import"
    columns: dict[str, Annotated[str, Field(min_length=1)]]
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict)
    value_maps: dict[str, dict[str, str]] = Field(default_factory=dict)
    timezone: str | None = None
    timestamp_format: str | None = None
    date_format: str | None = None
    id_fields: list[str] | None = None
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ","
    encoding: str = "utf-8-sig"

    @property
    def tz(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    @property
    def event_type_from_column(self) -> bool:
        return "event_type" in self.columns

    @property
    def fields(self) -> list[str]:
        """Every field the mapping fills, columns first."""
        return list(dict.fromkeys([*self.columns, *self.constants]))

    @model_validator(mode="after")
    def _check(self) -> CsvMapping:
        if self.event_type not in EVENT_MODELS:
            raise ValueError(f"event_type {self.event_type!r} is not one of {', '.join(EVENT_TYPES)}")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone {self.timezone!r} is not an IANA zone name (e.g. Asia/Shanghai)") from None
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding {self.encoding!r} is unknown") from None
        for name in ("event_type", "source"):
            if name in self.constants:
                raise ValueError(f"constants: set {name} at the top level of the mapping, not in constants")
        if not self.columns:
            raise ValueError("columns: map at least one field to a CSV column")
        event_types = list(EVENT_TYPES) if self.event_type_from_column else [self.event_type]
        for path in self.fields:
            kinds = [k for k in (_resolve(et, path) for et in event_types) if k is not None]
            if not kinds:
                where = "any event type" if self.event_type_from_column else self.event_type
                raise ValueError(f"{path!r} is not a scalar field of {where} (use e.g. client_id or payload.units)")
            if isinstance(kinds[0], str):
                raise ValueError(f"{path}: {kinds[0]}")
        for path in self.value_maps:
            if path not in self.columns:
                raise ValueError(f"value_maps: {path!r} is not mapped to a column")
        for path in self.id_fields or ():
            if not any(isinstance(_resolve(et, path), type) for et in event_types):
                raise ValueError(f"id_fields: {path!r} is not a scalar field of the event")
        for required in ("client_id", "occurred_at"):
            if required not in self.columns and required not in self.constants:
                raise ValueError(f"{required} needs a column or a constant")
        if not self.event_type_from_column:
            payload = EVENT_MODELS[self.event_type].model_fields["payload"].annotation
            assert isinstance(payload, type) and issubclass(payload, BaseModel)
            for name, info in payload.model_fields.items():
                path = f"payload.{name}"
                if info.is_required() and not any(f == path or f.startswith(path + ".") for f in self.fields):
                    raise ValueError(f"{path} is required by {self.event_type} but has no column or constant")
            for path, value in self.constants.items():
                try:
                    _convert(_kind(self.event_type, path), _constant_text(value), self)
                except _CellError as exc:
                    raise ValueError(f"constants: {path}: {exc}") from None
        return self


def load_mapping(path: str) -> CsvMapping:
    """Read a JSON (or, for ``*.toml``, TOML) mapping file; ValueError with a one-line message if it is invalid."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"mapping {path}: cannot read: {exc.strerror or exc}") from None
    is_toml = path.lower().endswith(".toml")
    try:
        raw = tomllib.loads(data.decode("utf-8")) if is_toml else json.loads(data)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        kind = "TOML" if is_toml else "JSON"
        raise ValueError(f"mapping {path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"mapping {path}: must be an object, got {type(raw).__name__}")
    try:
        return CsvMapping.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"mapping {path}: {_describe_mapping(exc)}") from None


def _describe_mapping(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:5]:
        where = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ").replace("\n", " ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


# ---------------------------------------------------------------- field types


class _CellError(ValueError):
    """A cell or constant that cannot be converted to its field's type."""


_SCALARS: tuple[type, ...] = (bool, int, float, Decimal, datetime, date, uuid.UUID, str)


def _unwrap(annotation: Any) -> Any:
    """Strip Annotated[...] and Optional[...]; a real union stays a union."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _resolve(event_type: str, path: str) -> type | str | None:
    """The Python type to convert a cell to, a string explaining why the field is unmappable, or None if absent."""
    if path in ("event_type", "source"):
        return str
    model: Any = EVENT_MODELS[event_type]
    parts = path.split(".")
    if (parts[0] != "payload" and parts[0] not in _ENVELOPE_FIELDS) or (parts[0] == "payload" and len(parts) < 2):
        return None
    for i, part in enumerate(parts):
        fields = model.model_fields if isinstance(model, type) and issubclass(model, BaseModel) else {}
        if part not in fields:
            return None
        annotation = _unwrap(fields[part].annotation)
        if annotation is AwareDatetime or annotation is NaiveDatetime:
            annotation = datetime
        if i == len(parts) - 1:
            if isinstance(annotation, type) and (issubclass(annotation, Enum) or annotation in _SCALARS):
                return annotation
            return f"has type {getattr(annotation, '__name__', annotation)}, which a CSV cell cannot fill"
        model = annotation
    return None  # pragma: no cover - loop always returns


def _kind(event_type: str, path: str) -> type:
    kind = _resolve(event_type, path)
    assert isinstance(kind, type), (event_type, path, kind)
    return kind


def _constant_text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _convert(kind: type, text: str, mapping: CsvMapping) -> Any:
    """Convert a non-empty, stripped cell to `kind`, raising _CellError with a human message."""
    if kind is str:
        return text
    if kind is bool:
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _CellError(f"{text!r} is not a boolean (true/false, 1/0, yes/no)")
    if kind is int:
        body = text[1:] if text[:1] in "+-" else text
        if not (body.isascii() and body.isdigit()):
            raise _CellError(f"{text!r} is not an integer")
        return int(text)
    if kind is Decimal:
        try:
            value = Decimal(text)
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite():
            raise _CellError(f"{text!r} is not a decimal number")
        return value
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is None or number != number or number in (float("inf"), float("-inf")):
            raise _CellError(f"{text!r} is not a finite number")
        return number
    if kind is datetime:
        return _timestamp(text, mapping)
    if kind is date:
        try:
            if mapping.date_format:
                return datetime.strptime(text, mapping.date_format).date()
            return date.fromisoformat(text)
        except ValueError:
            raise _CellError(f"{text!r} is not a date ({mapping.date_format or 'YYYY-MM-DD'})") from None
    if kind is uuid.UUID:
        try:
            return uuid.UUID(text)
        except ValueError:
            raise _CellError(f"{text!r} is not a UUID") from None
    if issubclass(kind, Enum):
        try:
            return kind(text)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            raise _CellError(f"{text!r} is not one of {allowed}") from None
    raise _CellError(f"cannot convert to {kind.__name__}")  # pragma: no cover - _resolve only allows the above


def _timestamp(text: str, mapping: CsvMapping) -> datetime:
    try:
        if mapping.timestamp_format:
            value = datetime.strptime(text, mapping.timestamp_format)
        else:
            value = datetime.fromisoformat(text)
    except ValueError:
        expected = mapping.timestamp_format or "ISO 8601, e.g. 2024-05-01 08:30:00"
        raise _CellError(f"{text!r} is not a timestamp ({expected})") from None
    if value.tzinfo is None or value.utcoffset() is None:
        tz = mapping.tz
        if tz is None:
            raise _CellError(f"{text!r} has no UTC offset and the mapping sets no timezone")
        value = value.replace(tzinfo=tz)
    return value


# ---------------------------------------------------------------- CSV rows


def _set_path(target: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


def _get_path(source: dict[str, Any], path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _canonical(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _id_fields(event: dict[str, Any], mapping: CsvMapping) -> list[str]:
    """The fields a derived event_id hashes; empty means "the whole raw row"."""
    if mapping.id_fields:
        return mapping.id_fields
    family = family_of(event["event_type"])
    if family == "client":  # the client is the entity
        return ["event_type", "client_id", "occurred_at"]
    entity = _ENTITY_ID.get(family)
    if entity and _get_path(event, f"payload.{entity}") is not None:
        return ["event_type", "client_id", f"payload.{entity}", "occurred_at"]
    return []


def _derive_event_id(event: dict[str, Any], row: dict[str, str], mapping: CsvMapping) -> tuple[uuid.UUID, str]:
    """A deterministic event_id for a row without one, and a description of what it was derived from."""
    fields = _id_fields(event, mapping)
    if fields:
        key: list[Any] = [[f, _canonical(_get_path(event, f))] for f in fields]
        basis = ", ".join(fields)
    else:
        key = [["event_type", event["event_type"]], ["row", sorted(row.items())]]
        basis = "the whole row"
    name = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
    return uuid.uuid5(CSV_EVENT_NAMESPACE, name), basis


def _build(row: dict[str, str], mapping: CsvMapping) -> dict[str, Any]:
    """Cells -> the event dict in Python types; raises _CellError listing every bad cell of the row."""
    errors: list[str] = []
    event_type = mapping.event_type
    if mapping.event_type_from_column:
        column = mapping.columns["event_type"]
        text = row[column]
        text = mapping.value_maps.get("event_type", {}).get(text, text)
        if text:
            if text not in EVENT_MODELS:
                raise _CellError(f"column {column} (event_type): {text!r} is not a known event type")
            event_type = text
    event: dict[str, Any] = {
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "source": mapping.source,
    }
    for path in mapping.fields:
        if path == "event_type":
            continue
        kind = _resolve(event_type, path)
        if not isinstance(kind, type):  # field of another event type's payload (event_type from a column)
            continue
        column = mapping.columns.get(path)
        text = row[column] if column is not None else ""
        if column is not None and path in mapping.value_maps:
            text = mapping.value_maps[path].get(text, text)
        where = f"column {column} ({path})"
        if not text and path in mapping.constants:
            text, where = _constant_text(mapping.constants[path]), f"constant {path}"
        if not text:
            continue
        try:
            _set_path(event, path, _convert(kind, text, mapping))
        except _CellError as exc:
            errors.append(f"{where}: {exc}")
    if errors:
        raise _CellError("; ".join(errors))
    return event


def read_csv(stream: IO[str], mapping: CsvMapping) -> Iterator[LineResult]:
    """Turn each CSV record into an event via `mapping`. Open files with ``newline=""`` (as `csv` requires).

    A header that lacks a mapped column yields a single error for line 1 and nothing else.
    """
    reader = csv.reader(stream, delimiter=mapping.delimiter)
    header: list[str] | None = None
    seen: dict[uuid.UUID, int] = {}
    end = 0  # physical line the previous record ended on
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            end = reader.line_num
            yield LineResult(start, None, f"unreadable CSV: {exc}", "csv_error")
            continue
        except UnicodeDecodeError as exc:
            # the decoder reads ahead in chunks, so the bad bytes are at or after this line
            message = f"input is not valid {mapping.encoding} text ({exc.reason}); set encoding in the mapping"
            yield LineResult(start, None, message, "bad_encoding")
            return
        end = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().removeprefix("\ufeff") for c in cells]
            missing = [f"{col} ({path})" for path, col in mapping.columns.items() if col not in header]
            duplicated = sorted({col for col in mapping.columns.values() if header.count(col) > 1})
            if missing or duplicated:
                problems = []
                if missing:
                    problems.append(f"missing mapped columns {', '.join(missing)}")
                if duplicated:
                    problems.append(f"ambiguous duplicated columns {', '.join(duplicated)}")
                yield LineResult(start, None, f"header: {'; '.join(problems)}", "bad_header")
                return
            continue
        if len(cells) != len(header):
            message = f"{len(cells)} cells but the header has {len(header)} columns"
            yield LineResult(start, None, message, "bad_row")
            continue
        row = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        yield _row_result(start, row, mapping, seen)


def _row_result(line: int, row: dict[str, str], mapping: CsvMapping, seen: dict[uuid.UUID, int]) -> LineResult:
    try:
        event = _build(row, mapping)
    except _CellError as exc:
        return LineResult(line, None, str(exc), "bad_cell")
    basis = "the event_id column"
    if "event_id" not in event:
        event["event_id"], basis = _derive_event_id(event, row, mapping)
    try:
        validated: Envelope = EVENT_ADAPTER.validate_python(event)  # type: ignore[assignment]
    except ValidationError as exc:
        return LineResult(line, None, describe(exc), classify(exc))
    first = seen.setdefault(validated.event_id, line)
    if first != line:
        message = f"duplicate of line {first}: same event_id {validated.event_id} (from {basis})"
        return LineResult(line, None, message, "duplicate")
    return LineResult(line, validated, None)


# ---------------------------------------------------------------- entry point


def read_events(path: str, fmt: str | None = None, mapping: CsvMapping | None = None) -> Iterator[LineResult]:
    """Open `path` (``"-"`` = stdin) and yield its records as LineResults.

    Argument problems (unknown format, CSV without mapping, unreadable file) raise at call time, not on the first
    iteration; the file is closed when the iterator is exhausted or closed.
    """
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "csv" and mapping is None:
        raise ValueError("reading CSV needs a column mapping (see producers.files.CsvMapping)")
    binary: IO[bytes] = sys.stdin.buffer if path == "-" else open(path, "rb")  # noqa: SIM115 - closed by _iterate
    return _iterate(binary, path != "-", fmt, mapping)


def _iterate(binary: IO[bytes], owned: bool, fmt: str, mapping: CsvMapping | None) -> Iterator[LineResult]:
    try:
        if fmt == "jsonl":
            yield from read_jsonl(binary)
        else:
            assert mapping is not None
            text = io.TextIOWrapper(binary, encoding=mapping.encoding, newline="")
            try:
                yield from read_csv(text, mapping)
            finally:
                text.detach()  # leave closing (or not, for stdin) to us
    finally:
        if owned:
            binary.close()
