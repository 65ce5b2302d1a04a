"""Publisher to a Knative broker: each event a CloudEvent in binary content mode, built with the
CloudEvents SDK. The broker's address is K_SINK, which the SinkBinding in infra/ injects.

The broker's Triggers filter on the CloudEvent `type` (`dev.funcmart.order.placed`, ...) and
deliver to the consumer's Knative Service, retrying with backoff and dead-lettering what still
fails, as SQS and its redrive policy do on AWS. The body is the same JSON the SQS publisher
sends, so the consumer reads one message format on every platform.

A broker ingress that is briefly slow or busy loses no event: its accept queue full under a
burst (the connection then times out), a 503 while an ingress pod restarts. Such a publish is
tried again, the same CloudEvent each time (one id, one signature, so a copy that did arrive
is the same event to every consumer, which takes it as a redelivery), up to `attempts` times
with a short backoff, as botocore retries the SQS publisher's SendMessage. Only then is it
DependencyUnavailable, and the order is left for ReconcileOrders, which on Knative takes
minutes (it re-publishes orders open two minutes, once a minute). A status Knative Eventing
would not retry either (400, 401, 403, 413: the event itself is refused) fails at once.

Events go out over kept HTTP/1.1 connections (`KeptConnections`, one per publishing thread),
not a new TCP connection per event.

Every event is signed (`funcmart.adapters.event_signing`): two extension attributes that the
Knative host verifies before a consumer runs, so a CloudEvent POSTed by anyone else is
refused.

With tracing on, each event carries the CloudEvents distributed-tracing extension
(`traceparent`, and `tracestate` when there is one): the context of the producer span it was
published under, which the consumer continues. The signature does not cover them, on
purpose: Knative Eventing's broker, where its own tracing is on, rewrites `traceparent` as
the event passes through its ingress and filter (so a signed one would fail every check),
and a trace context decides nothing a consumer does: a forged one can at most file spans
under another trace, never change an order.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from funcmart.adapters import tracing
from funcmart.adapters.event_signing import EventKeys
from funcmart.domain.errors import DependencyUnavailable
from funcmart.domain.orders import Event, event_to_dict

TYPE_PREFIX = "dev.funcmart."
# CloudEvents extension attribute carrying the correlation id (names are lowercase a-z0-9).
CORRELATION_EXTENSION = "correlationid"

Opener = Callable[..., Any]
# What the broker's ingress may answer while it cannot take an event yet: the statuses
# Knative Eventing's data-plane contract (knative/specs, specs/eventing/data-plane.md) has
# senders retry: 404, 409, 429 and 5xx.
RETRIED_STATUSES = frozenset({404, 409, 429})


def cloudevent_type(event_type: str) -> str:
    """`OrderPlaced` -> `dev.funcmart.order.placed`: the type Triggers filter on."""
    words = re.findall(r"[A-Z][a-z0-9]*", event_type)
    if not words or "".join(words) != event_type:
        raise ValueError(f"an event type is CamelCase, got {event_type!r}")
    return TYPE_PREFIX + ".".join(w.lower() for w in words)


class CloudEventPublisher:
    def __init__(
        self,
        sink_url: str | None,
        keys: EventKeys,
        source: str = "funcmart",
        timeout_seconds: float = 2.0,
        opener: Opener | None = None,
        attempts: int = 3,
        backoff_seconds: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if attempts < 1:
            raise ValueError("a publish is attempted at least once")
        self._sink = sink_url
        self._keys = keys
        self._source = source
        self._timeout = timeout_seconds
        self._open = opener or KeptConnections()
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._sleep = sleep

    def publish(self, event: Event) -> None:
        sink = self._sink
        if not sink:
            raise DependencyUnavailable("no broker is configured (BROKER_URL or K_SINK)")
        attributes = {
            "specversion": "1.0",
            "id": uuid.uuid4().hex,
            "type": cloudevent_type(event.type),
            "source": self._source,
            "subject": event.order_id,
            "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            CORRELATION_EXTENSION: event.correlation_id or "-",
        }
        body = json.dumps(event_to_dict(event), separators=(",", ":")).encode()
        attributes.update(self._keys.sign(attributes, body))
        span_attributes = {
            "messaging.system": "knative_broker",
            "messaging.destination.name": attributes["type"],
            "messaging.message.id": attributes["id"],
            "funcmart.order_id": event.order_id,
        }
        with tracing.producer_span(f"publish {event.type}", span_attributes, event.trace_context):
            attributes.update(tracing.inject())  # not signed: see the module docstring
            self._send(sink, event, attributes, body)

    def _send(self, sink: str, event: Event, attributes: dict[str, str], body: bytes) -> None:
        """POST the event until the broker takes it, `attempts` times at most (see above)."""
        # Imported here: the SDK ships in the Knative image, not in the Lambda package.
        from cloudevents.conversion import to_binary
        from cloudevents.http import CloudEvent

        headers, data = to_binary(CloudEvent(attributes, body))
        for attempt in range(1, self._attempts + 1):
            try:
                self._post(sink, headers, data, event)
                return
            except BrokerBusy:
                if attempt == self._attempts:
                    raise
            # Exponential, with jitter: the publishers a burst failed together do not come
            # back together.
            base = self._backoff * 2 ** (attempt - 1)
            self._sleep(base / 2 + random.uniform(0, base / 2))

    def _post(self, sink: str, headers: Any, data: Any, event: Event) -> None:
        request = urllib.request.Request(sink, data=data, headers=headers, method="POST")
        try:
            with self._open(request, timeout=self._timeout) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            # Unreachable, refused, reset, or no answer within the timeout: whether the broker
            # took the event is unknown, and sending it again is safe.
            raise BrokerBusy(f"could not publish {event.type}: {exc}") from exc
        if 200 <= status < 300:
            return
        detail = f"the broker answered {status} to {event.type}"
        if status >= 500 or status in RETRIED_STATUSES:
            raise BrokerBusy(detail)
        raise DependencyUnavailable(detail)


class BrokerBusy(DependencyUnavailable):
    """A publish the broker did not take, in a way another attempt may succeed."""


class KeptConnections:
    """The publisher's opener: each request over an HTTP/1.1 connection to its sink that stays
    open for the next publish from the same thread, where `urlopen` would open (and close) a
    TCP connection per event, which cost a consumer more CPU than the rest of the publish.

    A kept connection the ingress closed while it was idle shows as a reset, a broken pipe or
    a closed connection on its next request: that request goes again at once, once, on a new
    connection (the same CloudEvent: a copy that did arrive is a redelivery to a consumer).
    Anything else is raised as `urlopen` raises it (OSError), for the publisher's retries."""

    _STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)

    def __init__(self) -> None:
        self._local = threading.local()

    def __call__(self, request: urllib.request.Request, timeout: float) -> Answered:
        url = urllib.parse.urlsplit(request.full_url)
        kept: dict[tuple[str, str], http.client.HTTPConnection] = self._local.__dict__.setdefault(
            "kept", {}
        )
        key = (url.scheme, url.netloc)
        target = urllib.parse.urlunsplit(("", "", url.path or "/", url.query, ""))
        headers = dict(request.header_items())
        connection = kept.pop(key, None)
        fresh = connection is None
        while True:
            if connection is None:
                connection = self._connect(url, timeout)
            try:
                connection.request(request.get_method(), target, request.data, headers)
                response = connection.getresponse()
                response.read()
            except self._STALE:
                connection.close()
                if fresh:
                    raise
                connection, fresh = None, True
                continue
            except BaseException:
                connection.close()
                raise
            if response.will_close:
                connection.close()
            else:
                kept[key] = connection
            return Answered(response.status)

    @staticmethod
    def _connect(url: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
        if url.scheme == "https":
            return http.client.HTTPSConnection(url.hostname or "", url.port, timeout=timeout)
        if url.scheme == "http":
            return http.client.HTTPConnection(url.hostname or "", url.port, timeout=timeout)
        raise urllib.error.URLError(f"a broker is reached over http or https, not {url.scheme!r}")


class Answered:
    """The status a sink answered with (the body is read and dropped)."""

    __slots__ = ("status",)

    def __init__(self, status: int) -> None:
        self.status = status

    def __enter__(self) -> Answered:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None
