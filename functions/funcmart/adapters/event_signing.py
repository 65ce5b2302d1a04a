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

A signature alone would let a captured event be posted again, later or elsewhere. `verify`
binds it to where and when:

- where: each signed `type` is meant for one consumer (`CONSUMERS`, the same binding as the
  Triggers in infra/eventing.yaml), plus HandleDeadLetters, the dead-letter sink of every
  Trigger. A consumer refuses an event of a type meant for another.
- when: the signed `time` must be at most `MAX_AGE_SECONDS` old and at most
  `MAX_SKEW_SECONDS` ahead of the consumer's clock. Three hours: the Triggers retry 11 times
  with exponential backoff from 2 s, so the last retry (and the dead letter after it) leaves
  at most 2 s x (2 + 4 + ... + 2^11) = 8,188 s after the event was published, plus twelve
  attempts' timeouts; a window shorter than that would refuse the broker's own retries.
  (`tests/platforms` checks the window against the rendered Triggers.)

Whatever a body holds (30,000 nested arrays, bytes that are not JSON), `verify` answers
BadSignature, never another exception.
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


# Each signed event type, and the consumers it is meant for: the Trigger's subscriber, and
# the dead-letter sink every Trigger names.
DEAD_LETTER_CONSUMER = "HandleDeadLetters"
CONSUMERS: dict[str, frozenset[str]] = {
    "dev.funcmart.order.placed": frozenset({"ProcessOrder", DEAD_LETTER_CONSUMER}),
    "dev.funcmart.order.paid": frozenset({"FulfilOrder", DEAD_LETTER_CONSUMER}),
}
MAX_AGE_SECONDS = 3 * 3600
MAX_SKEW_SECONDS = 300


class BadSignature(Exception):
    """An event whose signature is missing, made with a key we do not hold, or wrong."""


class StaleEvent(BadSignature):
    """A signed event older than the window (or from the future): a replay, not a delivery."""


class MisdirectedEvent(BadSignature):
    """A signed event meant for another consumer."""


def consumer_key(name: str) -> str:
    """A function's name as its logical id or its Knative Service name: `ProcessOrder` and
    `process-order` are one consumer."""
    return name.replace("-", "").replace("_", "").lower()


def consumers_of(event_type: str) -> frozenset[str]:
    """The consumers (as `consumer_key`s) an event type is meant for; none for other types."""
    return frozenset(consumer_key(c) for c in CONSUMERS.get(event_type, ()))


def event_epoch(attributes: Mapping[str, Any]) -> float | None:
    """The event's `time` as a POSIX timestamp; None when it has none we can read."""
    text = canonical_time(attributes.get("time"))
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def sqs_origin(attributes: Mapping[str, Any]) -> tuple[str, float | None]:
    """What a host names as an SQS record's origin for a CloudEvent, from its signed
    attributes only: the queue its type feeds (`order-placed-queue`; a dead letter arrives
    with the type of the event that died) and when it was sent. Unsigned attributes, the
    `knativeerror*` a dead-letter sink adds above all, never reach a function's fields."""
    event_type = str(attributes.get("type", ""))
    prefix = "dev.funcmart."
    name = event_type[len(prefix) :] if event_type in CONSUMERS else ""
    origin = f"{name.replace('.', '-')}-queue" if name else "broker"
    return origin, event_epoch(attributes)


def verify(
    keys: EventKeys,
    attributes: Mapping[str, Any],
    data: Any,
    *,
    consumer: str,
    now: float,
    max_age_seconds: float = MAX_AGE_SECONDS,
) -> str:
    """The id of the key that signed an event meant for `consumer` and sent within the
    window before `now`; BadSignature (StaleEvent, MisdirectedEvent: with why) otherwise.

    The signature is checked first: an unsigned event learns nothing of the rules."""
    kid = keys.verify(attributes, data)
    event_type = str(attributes.get("type", ""))
    if consumer_key(consumer) not in consumers_of(event_type):
        raise MisdirectedEvent(f"an event of type {event_type[:100]!r} is not meant for {consumer}")
    sent = event_epoch(attributes)
    if sent is None:
        raise StaleEvent("the event carries no readable time")
    if sent < now - max_age_seconds:
        raise StaleEvent(f"the event is {int(now - sent)} s old; at most {int(max_age_seconds)} s")
    if sent > now + MAX_SKEW_SECONDS:
        raise StaleEvent(f"the event's time is {int(sent - now)} s ahead of this clock")
    return kid


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
        except (ValueError, UnicodeDecodeError, RecursionError):
            # Not JSON, or nested past what the parser takes: signed (and so, as no
            # publisher of ours sends it, refused) as its base64 text.
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
    try:
        signed = canonical_form(attributes, data)
    except (RecursionError, TypeError, ValueError) as exc:
        # Data nested too deep to serialise, or values JSON cannot hold: no publisher of
        # ours signed that.
        raise BadSignature(f"the event's data cannot be put in canonical form ({exc})") from None
    return hmac.new(key.encode(), signed, hashlib.sha256).hexdigest()


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
