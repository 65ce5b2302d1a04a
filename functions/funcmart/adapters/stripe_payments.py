"""PaymentGateway over Stripe, with the official SDK.

A charge is a PaymentIntent created and confirmed in one request, with the order id in its
idempotency key: however often a message is redelivered, Stripe creates one intent and
replays its first answer. A refund is idempotent the same way. Errors are classified once:

    card declined (402 card_error)              PaymentDeclined: FAILED, stock released
    network errors, 5xx, 429, idempotency locks TransientFailure: the message is retried
    authentication, permission, bad request     PaymentMisconfigured: NEEDS_ATTENTION, logged

Stripe keeps an idempotent answer for 24 hours, errors included: a charge retried with the
same key within that window gets the same answer, so a 5xx Stripe answered once is answered
again until the key expires (the message is then dead-lettered and the order waits for an
operator, who retries it later).

The secret key comes from the environment (Secrets Manager on AWS, a Kubernetes Secret on
Knative), never from the repository. The SDK does not retry (the queue does, with backoff).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from funcmart.domain.errors import TransientFailure
from funcmart.domain.money import Money
from funcmart.domain.orders import (
    CAPTURED,
    REFUNDED,
    Charge,
    PaymentDeclined,
    PaymentMisconfigured,
)

log = logging.getLogger(__name__)

# Payment intents in these states took the money (or will, without the customer).
_TAKEN = {"succeeded"}


def charge_key(order_id: str) -> str:
    return f"order-{order_id}-charge"


def refund_key(order_id: str) -> str:
    return f"order-{order_id}-refund"


def classify(exc: stripe.StripeError) -> Exception:
    """The domain's reading of a Stripe error."""
    if isinstance(exc, stripe.CardError):
        return PaymentDeclined(exc.user_message or exc.code or "card declined")
    if isinstance(exc, stripe.IdempotencyError):
        # The same key with other parameters: our bug or a changed order, not the card's.
        return PaymentMisconfigured(f"idempotency key reused differently: {exc.user_message}")
    if isinstance(exc, stripe.AuthenticationError | stripe.PermissionError):
        return PaymentMisconfigured(f"Stripe refused our credentials ({type(exc).__name__})")
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return TransientFailure(f"Stripe unavailable: {type(exc).__name__}")
    status = exc.http_status or 0
    if isinstance(exc, stripe.APIError) or status >= 500 or status == 409:
        return TransientFailure(f"Stripe answered {status or 'an error'}; retrying")
    if isinstance(exc, stripe.InvalidRequestError):
        return PaymentMisconfigured(f"Stripe rejected the request: {exc.user_message or exc}")
    return PaymentMisconfigured(f"Stripe error {type(exc).__name__}: {exc}")


class StripePaymentGateway:
    def __init__(
        self,
        api_key: str,
        api_base: str | None = None,
        timeout_seconds: float = 10.0,
        client: stripe.StripeClient | None = None,
    ) -> None:
        self._client = client or stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def _call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return request(*args, **kwargs)
        except stripe.StripeError as exc:
            raise classify(exc) from exc

    def charge(self, idempotency_key: str, amount: Money, token: str) -> Charge:
        intent = self._call(
            self._client.v1.payment_intents.create,
            params={
                "amount": amount.amount,
                "currency": amount.currency.lower(),
                "payment_method": token,
                "confirm": True,
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                "metadata": {"order_id": idempotency_key},
            },
            options={"idempotency_key": charge_key(idempotency_key)},
        )
        if intent.status not in _TAKEN:
            # requires_action and the like: nobody is there to authenticate the payment.
            raise PaymentDeclined(f"payment not completed ({intent.status})")
        return Charge(intent.id, idempotency_key, amount, CAPTURED)

    def lookup(self, idempotency_key: str) -> Charge | None:
        """The order's captured (or refunded) intent, by the order id in its metadata.

        Stripe's search is eventually consistent (an intent shows up within about a minute),
        so callers that hold the charge pass it on instead of looking it up."""
        found = self._call(
            self._client.v1.payment_intents.search,
            params={"query": f"metadata['order_id']:'{idempotency_key}'", "limit": 10},
        )
        for intent in found.data:
            if intent.status in _TAKEN:
                refunded = self._refunded(intent)
                amount = Money(int(intent.amount), str(intent.currency).upper())
                return Charge(
                    intent.id, idempotency_key, amount, REFUNDED if refunded else CAPTURED
                )
        return None

    def _refunded(self, intent: Any) -> bool:
        refunds = self._call(
            self._client.v1.refunds.list, params={"payment_intent": intent.id, "limit": 1}
        )
        return any(r.status in ("succeeded", "pending") for r in refunds.data)

    def refund(self, charge: Charge) -> Charge:
        self._call(
            self._client.v1.refunds.create,
            params={"payment_intent": charge.id, "metadata": {"order_id": charge.order_id}},
            options={"idempotency_key": refund_key(charge.order_id)},
        )
        return Charge(charge.id, charge.order_id, charge.amount, REFUNDED)
