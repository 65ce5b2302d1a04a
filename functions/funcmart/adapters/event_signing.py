"""Signed CloudEvents: an HMAC-SHA256 over what an event says, carried in two extension
attributes, so that a consumer on Knative takes only the events our publishers sent.

Knative Eventing's default feature flags authenticate nobody: without `authentication-oidc`
any pod that reaches a consumer's Service (or the broker) can POST a CloudEvent. The
publisher (`funcmart.adapters.broker`) signs each event with the shared key; the Knative host
verifies it before the function runs. Extension attributes travel with the event through the
broker, its retries and its deadLetterSink (which only adds `knativeerror*` attributes).

What is signed is a canonical form that survives the broker re-encoding the event (binary or
structured content mode, header or JSON attribute, re-serialised data): a JSON array of the
scheme, `id`, `source`, `type`, `subject` (null when absent), `time` (as UTC with six
fraction digits, whatever precision the broker writes it with) and the data as canonical JSON
(sorted keys, compact separators). Data is JSON on every funcmart event; other data is signed
as its base64 text, which a re-encoding may not preserve (it then fails closed). A signed
event must carry `time`: the Python SDK gives an event without one the time it was read.

The key id is derived from the key (an HMAC of a fixed label), so a key and its id can never
disagree; consumers accept the current key and, during a rotation, one previous key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# CloudEvents extension names: lowercase a-z and 0-9, at most 20 characters.
SIGNATURE_ATTRIBUTE = "funcmartsig"
KEY_ID_ATTRIBUTE = "funcmartkeyid"
SCHEME = "funcmart-hmac-sha256-v1"
_KEY_ID_LABEL = b"funcmart event key id"
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|z|[+-]\d\d:\d\d)?")


class BadSignature(Exception):
    """An event whose signature is missing, made with a key we do not hold, or wrong."""


def key_id(key: str) -> str:
    """The public name of a key: 16 hex digits that reveal nothing usable about it."""
    return hmac.new(key.encode(), _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16]


def canonical_time(value: Any) -> str | None:
    """`time` as UTC with microseconds: `...40.12Z`, `...40.120Z` and `...40.120000+00:00`
    (what different CloudEvents SDKs write for one instant) are one string."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value)
        m = _TIME.fullmatch(text.strip())
        if not m:
            return text  # not RFC 3339: signed as written
        fraction = (m.group(2) or "0")[:6].ljust(6, "0")
        offset = m.group(3) or "+00:00"
        offset = "+00:00" if offset in ("Z", "z") else offset
        try:
            moment = datetime.fromisoformat(f"{m.group(1)}.{fraction}{offset}")
        except ValueError:  # a 13th month, a 25th hour
            return text
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_data(data: Any) -> Any:
    """The data as a JSON value: bytes are parsed as JSON (the body of a binary-mode event),
    anything else is taken as the value the SDK decoded; bytes that are not JSON are tagged
    base64 text."""
    if isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return {"base64": base64.b64encode(raw).decode()}
    return data


def canonical_form(attributes: Mapping[str, Any], data: Any) -> bytes:
    """The bytes a signature covers (see the module docstring)."""
    subject = attributes.get("subject")
    signed = [
        SCHEME,
        str(attributes.get("id", "")),
        str(attributes.get("source", "")),
        str(attributes.get("type", "")),
        None if subject is None else str(subject),
        canonical_time(attributes.get("time")),
        canonical_data(data),
    ]
    return json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _mac(key: str, attributes: Mapping[str, Any], data: Any) -> str:
    return hmac.new(key.encode(), canonical_form(attributes, data), hashlib.sha256).hexdigest()


@dataclass(frozen=True, repr=False)
class EventKeys:
    """The key events are signed with, and the previous one still accepted during a rotation.
    (No repr: a log line or a traceback never shows a key.)"""

    current: str
    previous: str | None = None

    def __post_init__(self) -> None:
        if not self.current:
            raise ValueError("an event signing key is empty")

    def sign(self, attributes: Mapping[str, Any], data: Any) -> dict[str, str]:
        """The extension attributes to add to an event with these attributes and data."""
        return {
            KEY_ID_ATTRIBUTE: key_id(self.current),
            SIGNATURE_ATTRIBUTE: _mac(self.current, attributes, data),
        }

    def verify(self, attributes: Mapping[str, Any], data: Any) -> str:
        """The id of the key that signed the event; BadSignature (with why) if none did."""
        signature = attributes.get(SIGNATURE_ATTRIBUTE)
        kid = attributes.get(KEY_ID_ATTRIBUTE)
        if not signature or not kid:
            raise BadSignature(f"no {SIGNATURE_ATTRIBUTE} and {KEY_ID_ATTRIBUTE} attributes")
        keys = {key_id(k): k for k in (self.current, self.previous) if k}
        key = keys.get(str(kid))
        if key is None:
            raise BadSignature(f"signed with a key this function does not hold ({str(kid)[:32]!r})")
        expected = _mac(key, attributes, data).encode()
        if not hmac.compare_digest(expected, str(signature).encode("utf-8", "replace")):
            raise BadSignature("the signature does not match the event")
        return str(kid)
