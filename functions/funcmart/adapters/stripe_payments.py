"""PaymentGateway over Stripe, with the official SDK.

A charge is a PaymentIntent created and confirmed in one request, with the order id in its
idempotency key: however often a message is redelivered, Stripe creates one intent and
replays its first answer. A refund is idempotent the same way.

The customer's token takes one of the two shapes Stripe accepts: a PaymentMethod id (`pm_…`)
goes in `payment_method`; a card token (`tok_…`, from Stripe.js or Elements) is turned into
a PaymentMethod by Stripe itself, as its documentation for tokens says:
`payment_method_data[type]=card` and `payment_method_data[card][token]=tok_…`.

Errors are classified by who caused them, once:

    the customer's payment method: a card error (402), a  PaymentDeclined: FAILED, stock
      `payment_method_*` code, `resource_missing` on the    released, no page
      payment method or token (made up, detached, deleted)
    network errors, 5xx, 429, idempotency locks             TransientFailure: retried
    our own configuration: authentication, permission,      PaymentMisconfigured:
      a request Stripe cannot accept from us                  NEEDS_ATTENTION, paged

An intent still `processing` (the payment method settles later) is neither paid nor
declined: the charge comes back PROCESSING, the order stays PENDING and is looked up again
(a replayed answer says `processing` for ever, so the intent is read afresh by its id).
Refunding a PROCESSING charge cancels its intent; if it succeeded meanwhile it is refunded.

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
    PROCESSING,
    REFUNDED,
    VOIDED,
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


# Codes Stripe gives for a payment method that cannot pay (besides card errors, which are
# 402s): the customer's doing, never ours.
_DECLINE_CODES = frozenset(
    {
        "card_declined",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "invalid_cvc",
        "invalid_expiry_month",
        "invalid_expiry_year",
        "invalid_number",
        "invalid_card_type",
        "processing_error",
        "payment_intent_authentication_failure",
        "payment_intent_payment_attempt_failed",
        "setup_intent_authentication_failure",
        "token_already_used",
    }
)
# The request parameters that carry what the customer sent.
_CUSTOMER_PARAMS = ("payment_method", "payment_method_data", "source", "card")


def caused_by_payment_method(exc: stripe.StripeError) -> bool:
    """Whether Stripe refused the customer's payment method rather than our request: a made
    up, deleted, detached or unusable method or token, or a card that cannot pay."""
    if isinstance(exc, stripe.CardError):
        return True
    code = str(exc.code or "")
    param = str(getattr(exc, "param", None) or "")
    if code in _DECLINE_CODES or code.startswith("payment_method_"):
        return True
    return isinstance(exc, stripe.InvalidRequestError) and param.startswith(_CUSTOMER_PARAMS)


def classify(exc: stripe.StripeError) -> Exception:
    """The domain's reading of a Stripe error: whose fault it is decides what happens."""
    if caused_by_payment_method(exc) and not isinstance(exc, stripe.IdempotencyError):
        return PaymentDeclined(f"Stripe refused the payment method: {exc.code or 'declined'}")
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
                **payment_method_params(token),
                "confirm": True,
                "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                "metadata": {"order_id": idempotency_key},
            },
            options={"idempotency_key": charge_key(idempotency_key)},
        )
        if intent.status == "processing":
            # A replay repeats the first answer: the intent's state now is read by its id.
            intent = self._call(self._client.v1.payment_intents.retrieve, intent.id)
        if intent.status == "processing":
            return Charge(intent.id, idempotency_key, amount, PROCESSING)
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
        pending: Charge | None = None
        for intent in found.data:
            amount = Money(int(intent.amount), str(intent.currency).upper())
            if intent.status in _TAKEN:
                refunded = self._refunded(intent)
                return Charge(
                    intent.id, idempotency_key, amount, REFUNDED if refunded else CAPTURED
                )
            if intent.status == "processing":
                pending = Charge(intent.id, idempotency_key, amount, PROCESSING)
        return pending

    def _refunded(self, intent: Any) -> bool:
        refunds = self._call(
            self._client.v1.refunds.list, params={"payment_intent": intent.id, "limit": 1}
        )
        return any(r.status in ("succeeded", "pending") for r in refunds.data)

    def refund(self, charge: Charge) -> Charge:
        """The money given back: a captured intent refunded, a processing one cancelled (or
        refunded, if it succeeded meanwhile). Nothing taken: the charge comes back VOIDED."""
        if charge.status == PROCESSING:
            return self._settle_processing(charge)
        self._call(
            self._client.v1.refunds.create,
            params={"payment_intent": charge.id, "metadata": {"order_id": charge.order_id}},
            options={"idempotency_key": refund_key(charge.order_id)},
        )
        return Charge(charge.id, charge.order_id, charge.amount, REFUNDED)

    def _settle_processing(self, charge: Charge) -> Charge:
        intent = self._call(self._client.v1.payment_intents.retrieve, charge.id)
        if intent.status == "processing" or intent.status.startswith("requires_"):
            try:
                intent = self._client.v1.payment_intents.cancel(charge.id)
            except stripe.InvalidRequestError as exc:
                # It moved on (or cannot be cancelled while processing): read it again.
                log.warning("intent not cancelled", extra={"code": exc.code})
                intent = self._call(self._client.v1.payment_intents.retrieve, charge.id)
            except stripe.StripeError as exc:
                raise classify(exc) from exc
        if intent.status in _TAKEN:
            return self.refund(Charge(charge.id, charge.order_id, charge.amount, CAPTURED))
        if intent.status == "processing":
            # Stripe cannot cancel it yet: try again later (the caller's retry).
            raise TransientFailure("the payment is still processing; it cannot be cancelled yet")
        return Charge(charge.id, charge.order_id, charge.amount, VOIDED)


def payment_method_params(token: str) -> dict[str, Any]:
    """The PaymentIntent parameters that carry the customer's token, in the shape Stripe
    takes it: a PaymentMethod id as `payment_method`, a card token through
    `payment_method_data` (Stripe makes the PaymentMethod from it)."""
    if token.startswith("tok_"):
        return {"payment_method_data": {"type": "card", "card": {"token": token}}}
    return {"payment_method": token}
