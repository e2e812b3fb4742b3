"""Log records for people and for log pipelines: text or one JSON object per line, never a secret or PII.

`handler(fmt, secrets)` makes the one handler the worker and the CLI log through. Its filter rewrites
every record before it is formatted: the configured secrets (passwords, tokens, the password part of a
DSN) become `***`, and phone numbers and e-mail addresses are masked, so an exception that quotes a
DSN or a payload cannot leak them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

# user:password@ in URLs and DSNs (http://, chdb://, sasl...), and key=value secrets in messages.
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)(?P<secret>[^@\s]+)(?P<tail>@)")
_KEY_VALUE = re.compile(
    r"(?i)(?P<head>\b(?:password|passwd|secret|token|api_key)\s*[=:]\s*['\"]?)(?P<secret>[^\s'\",;]+)"
)
_EMAIL = re.compile(r"\b(?P<first>[A-Za-z0-9])[A-Za-z0-9._%+-]*(?P<domain>@[A-Za-z0-9.-]+\.[A-Za-z]{2,})\b")
_PHONE = re.compile(r"(?<!\d)(?P<head>\+?\d{3})[\d -]{4,10}(?P<tail>\d{4})(?!\d)")

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\g<head>***\g<tail>", text)
    text = _KEY_VALUE.sub(r"\g<head>***", text)
    text = _EMAIL.sub(r"\g<first>***\g<domain>", text)
    return _PHONE.sub(r"\g<head>****\g<tail>", text)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None  # already folded into the (redacted) message
            record.exc_text = None
        record.msg, record.args = redact(message, self.secrets), None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        out |= {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        return orjson.dumps(out, default=str).decode()


def handler(fmt: str, secrets: Iterable[str] = (), stream: object = None) -> logging.Handler:
    h = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    h.setFormatter(
        JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    h.addFilter(RedactingFilter(secrets))
    return h


_LEVELS = {"crit": "CRITICAL", "error": "ERROR", "warn": "WARNING", "info": "INFO", "debug": "DEBUG"}


def logging_config(level: str, fmt: str, secrets: Iterable[str] = ()) -> dict:
    """A `logging.config.dictConfig` with our one handler, replacing mode/faust's console handler."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"main": {"()": handler, "fmt": fmt, "secrets": tuple(secrets)}},
        "root": {"level": _LEVELS.get(level, level.upper()), "handlers": ["main"]},
    }
