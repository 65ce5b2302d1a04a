"""A local HTTP server that answers as Stripe's API does for the calls our adapter makes.

PaymentIntents (create and confirm with a PaymentMethod id or a card token through
`payment_method_data`, retrieve, cancel, search by metadata; a made-up PaymentMethod or
token is `resource_missing` on its parameter, as Stripe answers), Refunds (create, list),
idempotency keys with Stripe's rules (a replay returns the first answer, errors included, with
`Idempotent-Replayed: true`; the same key with other parameters is a 400 idempotency_error),
bearer-key authentication and Stripe's error bodies. Tests inject faults (a 500, a 429) and
read what was created. It binds 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

DECLINED_METHODS = {"pm_card_chargeDeclined", "pm_card_visa_chargeDeclined"}
# Stripe's test card tokens (https://docs.stripe.com/testing#cards): each exists in test mode.
TOKENS = {"tok_visa", "tok_mastercard", "tok_amex", "tok_chargeDeclined"}
DECLINED_TOKENS = {"tok_chargeDeclined"}


def _error(kind: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message, **extra}}


@dataclass
class StripeState:
    api_key: str
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # idempotency key -> (method, path, params, status, body)
    replays: dict[str, tuple[str, str, dict[str, str], int, dict[str, Any]]] = field(
        default_factory=dict
    )
    faults: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    # PaymentMethods that exist in this account besides Stripe's `pm_card_*` test methods.
    payment_methods: set[str] = field(default_factory=set)
    # PaymentMethods whose intents stay `processing` until a test settles them.
    processing_methods: set[str] = field(default_factory=set)
    # Whether a `processing` intent may be cancelled (Stripe allows it for some methods).
    cancel_processing: bool = False
    requests: list[tuple[str, str, str | None, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def settle(self, intent_id: str, status: str) -> None:
        """A processing intent settles (`succeeded`, or `requires_payment_method` when the
        payment failed), as Stripe's would some time after the request."""
        with self.lock:
            intent = self.intents[intent_id]
            intent["status"] = status
            intent["amount_received"] = intent["amount"] if status == "succeeded" else 0

    def fail_next(self, status: int, kind: str = "api_error", times: int = 1) -> None:
        for _ in range(times):
            self.faults.append((status, _error(kind, f"injected {status}")))


def _nested(params: dict[str, str], prefix: str) -> dict[str, str]:
    out = {}
    for k, v in params.items():
        m = re.fullmatch(rf"{prefix}\[(.+)\]", k)
        if m:
            out[m.group(1)] = v
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any], replayed: bool = False) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
        if replayed:
            self.send_header("Idempotent-Replayed", "true")
        self.end_headers()
        self.wfile.write(raw)

    def _dispatch(self, method: str) -> None:
        state = self.server.state
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode())) if length else {}
        query = dict(parse_qsl(url.query))
        key = self.headers.get("Idempotency-Key")
        if self.headers.get("Authorization") != f"Bearer {state.api_key}":
            return self._answer(401, _error("invalid_request_error", "Invalid API Key provided"))
        with state.lock:
            if state.faults:
                # A fault before the endpoint ran (a load balancer's 5xx, a 429): Stripe
                # stores nothing for the key, and a retry runs the request.
                status, body = state.faults.pop(0)
                state.requests.append((method, url.path, key, False))
                return self._answer(status, body)
            if key and method == "POST" and key in state.replays:
                m, path, params, status, body = state.replays[key]
                state.requests.append((method, url.path, key, True))
                if (m, path, params) != (method, url.path, form):
                    return self._answer(
                        400,
                        _error(
                            "idempotency_error",
                            "Keys for idempotent requests can only be used with the same "
                            "parameters they were first used with.",
                        ),
                    )
                return self._answer(status, body, replayed=True)
            state.requests.append((method, url.path, key, False))
            status, body = self._route(method, url.path, form, query)
            if key and method == "POST":
                state.replays[key] = (method, url.path, form, status, body)
        return self._answer(status, body)

    def _route(
        self, method: str, path: str, form: dict[str, str], query: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_intent(form)
        if method == "GET" and path == "/v1/payment_intents/search":
            m = re.fullmatch(r"metadata\['(\w+)'\]:'([^']*)'", query.get("query", ""))
            if not m:
                return 400, _error("invalid_request_error", "unsupported search query")
            found = [i for i in state.intents.values() if i["metadata"].get(m[1]) == m[2]]
            return 200, {
                "object": "search_result",
                "url": "/v1/payment_intents/search",
                "has_more": False,
                "data": found,
            }
        if method == "POST" and path == "/v1/refunds":
            return self._create_refund(form)
        if method == "GET" and path == "/v1/refunds":
            found = [
                r
                for r in state.refunds.values()
                if r["payment_intent"] == query.get("payment_intent")
            ]
            return 200, {"object": "list", "url": "/v1/refunds", "has_more": False, "data": found}
        if path.startswith("/v1/payment_intents/pi_"):
            return self._intent_by_id(method, path)
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({path})")

    def _create_refund(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        intent = state.intents.get(form.get("payment_intent", ""))
        if intent is None:
            return 404, _error("invalid_request_error", "No such payment_intent")
        if intent["status"] != "succeeded":
            return 400, _error(
                "invalid_request_error",
                f"This PaymentIntent has a status of {intent['status']}; only a "
                "succeeded one can be refunded.",
                code="payment_intent_unexpected_state",
            )
        if any(r["payment_intent"] == intent["id"] for r in state.refunds.values()):
            return 400, _error(
                "invalid_request_error",
                "Charge has already been refunded.",
                code="charge_already_refunded",
            )
        refund = {
            "id": f"re_{uuid.uuid4().hex[:24]}",
            "object": "refund",
            "amount": intent["amount"],
            "currency": intent["currency"],
            "payment_intent": intent["id"],
            "status": "succeeded",
            "metadata": _nested(form, "metadata"),
        }
        state.refunds[refund["id"]] = refund
        return 200, refund

    def _intent_by_id(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        m = re.fullmatch(r"/v1/payment_intents/(pi_\w+)(/cancel)?", path)
        if m and m[1] in state.intents:
            intent = state.intents[m[1]]
            if method == "GET" and not m[2]:
                return 200, intent
            if method == "POST" and m[2]:
                return self._cancel_intent(intent)
        if m:
            return 404, _error(
                "invalid_request_error",
                f"No such payment_intent: '{m[1]}'",
                code="resource_missing",
                param="intent",
            )
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({path})")

    def _cancel_intent(self, intent: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        cancellable = intent["status"].startswith("requires_") or (
            intent["status"] == "processing" and self.server.state.cancel_processing
        )
        if not cancellable:
            return 400, _error(
                "invalid_request_error",
                "You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
                code="payment_intent_unexpected_state",
                payment_intent=intent,
            )
        intent["status"] = "canceled"
        return 200, intent

    def _payment_method(
        self, form: dict[str, str]
    ) -> tuple[str, tuple[int, dict[str, Any]] | None]:
        """The PaymentMethod the request names, or Stripe's refusal of it: an id must exist
        (`payment_method`), a card token goes through `payment_method_data`."""
        state = self.server.state
        if "payment_method" in form:
            method = form["payment_method"]
            if method.startswith("pm_card_") or method in state.payment_methods:
                return method, None
            return method, (
                400,
                _error(
                    "invalid_request_error",
                    f"No such PaymentMethod: '{method}'",
                    code="resource_missing",
                    param="payment_method",
                ),
            )
        data = _nested(form, "payment_method_data")
        token = data.get("card][token", "")
        if data.get("type") != "card" or not token:
            return "", (
                400,
                _error(
                    "invalid_request_error",
                    "You must provide a payment_method or payment_method_data.",
                ),
            )
        if token not in TOKENS:
            return token, (
                400,
                _error(
                    "invalid_request_error",
                    f"No such token: '{token}'",
                    code="resource_missing",
                    param="payment_method_data[card][token]",
                ),
            )
        return ("pm_card_chargeDeclined" if token in DECLINED_TOKENS else "pm_from_" + token), None

    def _create_intent(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        state = self.server.state
        try:
            amount = int(form["amount"])
        except (KeyError, ValueError):
            return 400, _error("invalid_request_error", "Missing required param: amount.")
        method, refused = self._payment_method(form)
        if refused is not None:
            return refused
        intent = {
            "id": f"pi_{uuid.uuid4().hex[:24]}",
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": form.get("currency", ""),
            "metadata": _nested(form, "metadata"),
            "payment_method": method,
            "status": "requires_payment_method",
        }
        if method in DECLINED_METHODS:
            intent["last_payment_error"] = {"code": "card_declined"}
            state.intents[intent["id"]] = intent
            return 402, _error(
                "card_error",
                "Your card was declined.",
                code="card_declined",
                decline_code="generic_decline",
                payment_intent=intent,
            )
        if form.get("confirm") == "true" and method in state.processing_methods:
            intent.update(status="processing")
        elif form.get("confirm") == "true":
            intent.update(status="succeeded", amount_received=amount)
        state.intents[intent["id"]] = intent
        return 200, intent

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: StripeState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def stripe_api(api_key: str = "sk_test_funcmart") -> Iterator[tuple[str, StripeState]]:
    """The server's base URL and its state, while the block runs."""
    state = StripeState(api_key)
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
