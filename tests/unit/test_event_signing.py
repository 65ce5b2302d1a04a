"""Signed CloudEvents: what a signature covers, what breaks it and what does not (the
broker's re-encodings, its dead-letter attributes), wrong keys and key rotation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from funcmart.adapters.event_signing import (
    KEY_ID_ATTRIBUTE,
    MAX_AGE_SECONDS,
    SIGNATURE_ATTRIBUTE,
    BadSignature,
    EventKeys,
    MisdirectedEvent,
    StaleEvent,
    canonical_time,
    key_id,
    verify,
)

KEY = "k" * 24 + "-signing-key-of-32+-bytes"
OTHER = "o" * 24 + "-another-key-of-32+-bytes"
KEYS = EventKeys(KEY)
DATA = {"type": "OrderPlaced", "orderId": "o-1", "correlationId": "c-1"}
BODY = json.dumps(DATA, separators=(",", ":")).encode()


def attributes(**changes: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "specversion": "1.0",
        "id": "ev-1",
        "source": "funcmart/place-order",
        "type": "dev.funcmart.order.placed",
        "subject": "o-1",
        "time": "2026-11-30T08:36:40.120Z",
        "datacontenttype": "application/json",
        "correlationid": "c-1",
    }
    attrs.update(changes)
    return {k: v for k, v in attrs.items() if v is not None}


def signed(keys: EventKeys = KEYS, **changes: Any) -> dict[str, Any]:
    """The attributes a publisher sends: the event's, plus the signature's two."""
    attrs = attributes(**changes)
    return {**attrs, **keys.sign(attrs, BODY)}


# ------------------------------------------------------------------------ what verifies


def test_a_signed_event_verifies_and_names_its_key() -> None:
    assert EventKeys(KEY).verify(signed(), BODY) == key_id(KEY)


def test_the_signature_travels_as_two_lowercase_alphanumeric_extensions() -> None:
    extensions = EventKeys(KEY).sign(attributes(), BODY)
    assert set(extensions) == {SIGNATURE_ATTRIBUTE, KEY_ID_ATTRIBUTE}
    for name in extensions:
        assert re.fullmatch(r"[a-z0-9]{1,20}", name), name


@pytest.mark.parametrize(
    "received",
    [
        DATA,  # binary mode, decoded by the SDK
        json.loads(json.dumps(DATA, indent=2, sort_keys=True)),  # structured, re-serialised
        b'{ "correlationId": "c-1",\n "orderId": "o-1", "type": "OrderPlaced" }',
        BODY,
    ],
    ids=["decoded", "re-serialised", "reordered-bytes", "same-bytes"],
)
def test_data_re_encoded_by_the_broker_still_verifies(received: Any) -> None:
    assert EventKeys(KEY).verify(signed(), received)


@pytest.mark.parametrize(
    "time",
    [
        "2026-11-30T08:36:40.12Z",  # Go's RFC3339Nano drops trailing zeros
        "2026-11-30T08:36:40.120000+00:00",
        "2026-11-30T09:36:40.120+01:00",
        "2026-11-30T08:36:40.120000000Z",
        datetime(2026, 11, 30, 8, 36, 40, 120000, tzinfo=UTC),
    ],
)
def test_time_written_another_way_for_the_same_instant_still_verifies(time: Any) -> None:
    received = {**signed(), "time": time}
    assert EventKeys(KEY).verify(received, DATA)


def test_a_dead_lettered_event_with_knative_error_attributes_still_verifies() -> None:
    dead = {
        **signed(),
        "knativeerrordest": "http://process-order.funcmart.svc.cluster.local",
        "knativeerrorcode": "500",
        "knativeerrordata": "ZGVsaXZlcnkgZmFpbGVk",
    }
    assert EventKeys(KEY).verify(dead, DATA)


def test_an_event_without_subject_or_data_signs_and_verifies() -> None:
    attrs = attributes(subject=None)
    sent = {**attrs, **EventKeys(KEY).sign(attrs, None)}
    assert EventKeys(KEY).verify(sent, None)


# ----------------------------------------------------------------------- what is refused


@pytest.mark.parametrize(
    ("attribute", "forged"),
    [
        ("id", "ev-2"),
        ("source", "funcmart/elsewhere"),
        ("type", "dev.funcmart.order.paid"),
        ("subject", "o-2"),
        ("subject", None),  # removed
        ("time", "2026-11-30T08:36:41.120Z"),
        ("time", None),
    ],
)
def test_changing_any_signed_attribute_breaks_the_signature(attribute: str, forged: Any) -> None:
    received = signed()
    if forged is None:
        del received[attribute]
    else:
        received[attribute] = forged
    with pytest.raises(BadSignature, match="does not match"):
        EventKeys(KEY).verify(received, DATA)


def test_adding_a_subject_breaks_the_signature() -> None:
    attrs = attributes(subject=None)
    received = {**attrs, **EventKeys(KEY).sign(attrs, BODY), "subject": "o-9"}
    with pytest.raises(BadSignature):
        EventKeys(KEY).verify(received, DATA)


@pytest.mark.parametrize(
    "data",
    [
        {**DATA, "orderId": "o-2"},
        {**DATA, "extra": 1},
        {k: v for k, v in DATA.items() if k != "correlationId"},
        None,
        b"not json",
    ],
    ids=["changed", "added", "removed", "none", "not-json"],
)
def test_changing_the_data_breaks_the_signature(data: Any) -> None:
    with pytest.raises(BadSignature, match="does not match"):
        EventKeys(KEY).verify(signed(), data)


@pytest.mark.parametrize("missing", [SIGNATURE_ATTRIBUTE, KEY_ID_ATTRIBUTE])
def test_an_event_missing_either_attribute_is_refused(missing: str) -> None:
    received = signed()
    del received[missing]
    with pytest.raises(BadSignature, match="no funcmartsig"):
        EventKeys(KEY).verify(received, DATA)


def test_an_unsigned_event_is_refused() -> None:
    with pytest.raises(BadSignature):
        EventKeys(KEY).verify(attributes(), DATA)


def test_an_event_signed_with_another_key_is_refused() -> None:
    with pytest.raises(BadSignature, match="does not hold"):
        EventKeys(KEY).verify(signed(EventKeys(OTHER)), DATA)


def test_another_key_claiming_our_key_id_is_refused() -> None:
    # The key id is public: a forger can copy it, but cannot make the signature.
    forged = {**signed(EventKeys(OTHER)), KEY_ID_ATTRIBUTE: key_id(KEY)}
    with pytest.raises(BadSignature, match="does not match"):
        EventKeys(KEY).verify(forged, DATA)


@pytest.mark.parametrize("signature", ["", "0" * 64, "ü" * 64, "A" * 10_000])
def test_a_garbled_signature_is_refused_cleanly(signature: str) -> None:
    received = {**signed(), SIGNATURE_ATTRIBUTE: signature}
    with pytest.raises(BadSignature):
        EventKeys(KEY).verify(received, DATA)


# ------------------------------------------------------------------------------ rotation


def test_during_a_rotation_events_signed_with_the_previous_key_still_verify() -> None:
    # GIVEN an event a publisher still on the old key signed (or a retry of one)
    old_event = signed(EventKeys(OTHER))
    # WHEN a consumer already on the new key, which keeps the old one as previous, gets it
    rotating = EventKeys(KEY, previous=OTHER)
    # THEN it verifies, and so do events signed with the new key
    assert rotating.verify(old_event, DATA) == key_id(OTHER)
    assert rotating.verify(signed(rotating), DATA) == key_id(KEY)
    # and it signs with the new key only
    assert rotating.sign(attributes(), BODY)[KEY_ID_ATTRIBUTE] == key_id(KEY)


def test_once_the_previous_key_is_dropped_its_events_are_refused() -> None:
    with pytest.raises(BadSignature):
        EventKeys(KEY).verify(signed(EventKeys(OTHER)), DATA)


# --------------------------------------------------------------------------------- keys


def test_key_ids_name_keys_without_showing_them() -> None:
    assert key_id(KEY) == key_id(KEY)
    assert key_id(KEY) != key_id(OTHER)
    assert len(key_id(KEY)) == 16
    assert KEY not in repr(EventKeys(KEY, OTHER))
    assert OTHER not in repr(EventKeys(KEY, OTHER))


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        EventKeys("")


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("2026-11-30T08:36:40Z", "2026-11-30T08:36:40.000000Z"),
        ("2026-11-30T08:36:40.1234567Z", "2026-11-30T08:36:40.123456Z"),
        ("2026-11-30T08:36:40.5-02:00", "2026-11-30T10:36:40.500000Z"),
        ("yesterday", "yesterday"),  # not RFC 3339: signed as written
        ("2026-13-45T08:36:40Z", "2026-13-45T08:36:40Z"),
        (None, None),
    ],
)
def test_times_are_compared_as_instants_in_utc(written: Any, canonical: Any) -> None:
    assert canonical_time(written) == canonical


# ------------------------------------------------------------------ bound to where and when

SENT = datetime(2026, 11, 30, 8, 36, 40, 120000, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("consumer", ["ProcessOrder", "process-order", "HandleDeadLetters"])
def test_an_event_verifies_for_its_consumer_within_the_window(consumer: str) -> None:
    assert verify(KEYS, signed(), DATA, consumer=consumer, now=SENT + 60) == key_id(KEY)


@pytest.mark.parametrize("consumer", ["FulfilOrder", "ReconcileOrders", "PlaceOrder", ""])
def test_an_event_meant_for_another_consumer_is_refused(consumer: str) -> None:
    with pytest.raises(MisdirectedEvent):
        verify(KEYS, signed(), DATA, consumer=consumer, now=SENT)


def test_a_captured_event_replayed_after_the_window_is_refused() -> None:
    with pytest.raises(StaleEvent):
        verify(KEYS, signed(), DATA, consumer="ProcessOrder", now=SENT + MAX_AGE_SECONDS + 1)


def test_an_event_from_the_future_is_refused() -> None:
    with pytest.raises(StaleEvent):
        verify(KEYS, signed(), DATA, consumer="ProcessOrder", now=SENT - 3600)


def test_an_event_without_time_is_refused() -> None:
    attrs = attributes(time=None)
    sent = {**attrs, **KEYS.sign(attrs, DATA)}
    with pytest.raises(StaleEvent):
        verify(KEYS, sent, DATA, consumer="ProcessOrder", now=SENT)


def test_an_unsigned_event_is_refused_before_any_rule_is_told() -> None:
    with pytest.raises(BadSignature, match="no funcmartsig"):
        verify(KEYS, attributes(), DATA, consumer="FulfilOrder", now=0)


@pytest.mark.parametrize(
    "data",
    [b"[" * 30000 + b"]" * 30000, "[" * 30000, {"a": float("nan")}],
    ids=["30,000 deep bytes", "30,000 deep text", "not JSON"],
)
def test_any_body_is_a_bad_signature_never_a_crash(data: Any) -> None:
    with pytest.raises(BadSignature):
        verify(KEYS, signed(), data, consumer="ProcessOrder", now=SENT)


def test_a_deeply_nested_decoded_body_is_a_bad_signature() -> None:
    deep: Any = []
    for _ in range(30000):
        deep = [deep]
    with pytest.raises(BadSignature):
        verify(KEYS, signed(), deep, consumer="ProcessOrder", now=SENT)
