"""JSON Schema export: one file per event type (the contract upstream teams code against), plus the
alert message (the contract alert consumers code against)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.alerts import ALERT_SCHEMA_VERSION, alert_json_schema
from schemas.events import EVENT_MODELS, SCHEMA_VERSION

ID_BASE = "https://clientpulse.example/schemas"


def json_schemas() -> dict[str, dict]:
    out: dict[str, dict] = {}
    for event_type, model in EVENT_MODELS.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"{ID_BASE}/v{SCHEMA_VERSION}/{event_type}.schema.json"
        schema["title"] = event_type
        schema["description"] = (
            f"clientpulse event `{event_type}`, schema_version {SCHEMA_VERSION}. Unknown extra fields are "
            "ignored by consumers (tolerant reader); breaking changes bump schema_version."
        )
        out[event_type] = schema
    alert = alert_json_schema()
    alert["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    alert["$id"] = f"{ID_BASE}/alerts/v{ALERT_SCHEMA_VERSION}/alert.schema.json"
    out["alert"] = alert
    return out


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in json_schemas().items():
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
