"""Contact PII in analytics storage: phone numbers and e-mail addresses are stored masked. Pure, no I/O.

- phone: every digit is hidden behind `*` except the last four, and the first three when the number has
  at least 11 digits; a leading `+country code` followed by a separator stays visible. Separators are
  kept: `13812345678` -> `138****5678`, `+86 138 1234 5678` -> `+86 138 **** 5678`,
  `+86 (21) 5555-0100` -> `+86 (**) ****-0100`.
- e-mail: the local part becomes its first character and `***`, the domain stays:
  `zhang.wei@example.com` -> `z***@example.com`.

Both are idempotent (a masked value masks to itself), so masked data can be read back through the
contract (schemas.events accepts `*` in a phone) and masked again without change.

`Settings.store_contact_pii=True` turns masking off (the caller decides; nothing here reads settings).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

PII_KEYS = frozenset({"phone", "email"})
"""JSON keys whose string (or number) values are contact PII, wherever they appear in a record."""

_HIDDEN = "*"
_DIGITS = frozenset("0123456789*")


def mask_phone(phone: str) -> str:
    chars = list(phone)
    start = 0
    if phone.startswith("+"):
        end = 1
        while end < len(phone) and phone[end].isascii() and phone[end].isdigit():
            end += 1
        if end < len(phone):  # "+86 ..." : the country code before the first separator stays visible
            start = end
    positions = [i for i in range(start, len(chars)) if chars[i] in _DIGITS]
    n = len(positions)
    keep_tail = min(4, n // 2)
    keep_head = 3 if n >= 11 else 0
    for i in positions[keep_head : n - keep_tail]:
        chars[i] = _HIDDEN
    return "".join(chars)


def mask_email(email: str) -> str:
    if not email:
        return email
    local, at, domain = email.rpartition("@")
    if not at:  # not an address at all (only in rejected records): keep one character
        return email[:1] + "***"
    return (local[:1] + "***" if local else "") + "@" + domain


MASKS = {"phone": mask_phone, "email": mask_email}


def mask_value(key: str, value: Any) -> Any:
    """The masked form of `value` under the PII key `key`; numbers (a phone sent as a JSON number) too."""
    if isinstance(value, str):
        return MASKS[key](value) if value else value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return MASKS[key](str(value))
    return value


def mask_doc(doc: Any) -> Any:
    """A copy of a parsed JSON document with every value under a `phone` or `email` key masked."""
    if isinstance(doc, dict):
        return {k: mask_value(k, v) if k in PII_KEYS else mask_doc(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [mask_doc(v) for v in doc]
    return doc


# A JSON member "phone"/"email" with a string or number value, in raw bytes (valid JSON or not; a
# string cut off by the end of a truncated record counts too).
_MEMBER = re.compile(
    rb'"(phone|email)"(\s*:\s*)(?:"((?:[^"\\]|\\.)*)(?:"|\\?\Z)|(-?[0-9][0-9.eE+\-]*))',
    re.DOTALL,
)
# Key names can only be disguised through \u escapes: anything else is found by the regex.
_MAYBE_PII = (b'"phone"', b'"email"', b"\\u")


def _mask_member(m: re.Match[bytes]) -> bytes:
    key = m.group(1).decode()
    literal = m.group(3)
    if literal is None:
        text = m.group(4).decode()
    else:
        try:
            text = orjson.loads(b'"' + literal + b'"')
        except orjson.JSONDecodeError:
            text = literal.decode("utf-8", "replace")
    return b'"' + m.group(1) + b'"' + m.group(2) + orjson.dumps(MASKS[key](text))


def mask_raw(raw: bytes) -> bytes:
    """The record's bytes with contact PII masked, every other byte unchanged where possible.

    Values of `phone`/`email` members are rewritten in place. If the record is JSON and the in-place
    rewrite cannot be proven complete (keys written with \\u escapes, say), the document is re-serialized
    from its parsed, masked form instead. Bytes that are not JSON get the in-place rewrite only.
    """
    if not any(marker in raw for marker in _MAYBE_PII):  # substring scans: the hot path of every record
        return raw
    rewritten = _MEMBER.sub(_mask_member, raw)
    try:
        expected = mask_doc(orjson.loads(raw))
    except orjson.JSONDecodeError:
        return rewritten
    try:
        if orjson.loads(rewritten) == expected:
            return rewritten
    except orjson.JSONDecodeError:
        pass
    return orjson.dumps(expected)


def mask_contacts(contacts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Contact dicts (schemas.events.Contact.model_dump()) with phone and e-mail masked."""
    return [mask_doc(c) for c in contacts]
