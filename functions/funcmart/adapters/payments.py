"""The built-in payment gateway: a deterministic simulator with its own ledger in the table.

It behaves like a real gateway where it matters: a charge is captured at most once per
idempotency key (the order id), however often or concurrently it is asked. The card token
decides the outcome (see README, "Payment simulator"):

    tok_decline...   declined (final)
    tok_transient... a transient error every time (the message is retried, then dead-lettered)
    tok_flaky...     a transient error on the first attempt, captured on the next
    tok_slow...      captured at once, the answer delayed (PAYMENT_SLOW_SECONDS)
    anything else    captured
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

from pynamodb.exceptions import DoesNotExist, UpdateError

from funcmart.adapters.dynamodb.errors import is_conditional_failure, translate_errors
from funcmart.adapters.dynamodb.table import Tables
from funcmart.domain.errors import TransientFailure
from funcmart.domain.money import Money
from funcmart.domain.orders import REFUNDED, Charge, PaymentDeclined
from funcmart.ports import Clock


class SimulatedPaymentGateway:
    def __init__(self, tables: Tables, clock: Clock, slow_seconds: float = 2.0) -> None:
        self._t = tables
        self._clock = clock
        self._slow = slow_seconds

    def _key(self, idempotency_key: str) -> tuple[str, str]:
        return f"PAYSIM#{idempotency_key}", "CHARGE"

    @translate_errors
    def lookup(self, idempotency_key: str) -> Charge | None:
        try:
            item = self._t.SimulatedCharge.get(*self._key(idempotency_key), consistent_read=True)
        except DoesNotExist:
            return None
        return Charge(
            item.charge_id, idempotency_key, Money(int(item.amount), item.currency), item.status
        )

    @translate_errors
    def charge(self, idempotency_key: str, amount: Money, token: str) -> Charge:
        # No read first: the conditional write below is the check. A key charged before (a
        # redelivery) fails the condition and gets the existing charge back, so the common
        # case, a first attempt, costs one write instead of a read and a write.
        if token.startswith("tok_decline"):
            raise PaymentDeclined("card declined")
        if token.startswith("tok_transient"):
            raise TransientFailure("payment gateway timed out")
        if token.startswith("tok_flaky") and self._attempt(idempotency_key) == 1:
            raise TransientFailure("payment gateway timed out (first attempt)")
        model = self._t.SimulatedCharge
        charge_id = f"ch_{uuid.uuid4().hex[:20]}"
        item = model(*self._key(idempotency_key))
        try:
            # `captures` counts every time money was taken under this key: the condition
            # keeps it at one however many consumers race here.
            item.update(
                actions=[
                    model.charge_id.set(charge_id),
                    model.amount.set(amount.amount),
                    model.currency.set(amount.currency),
                    model.token.set(token),
                    model.status.set("CAPTURED"),
                    model.captured_at.set(self._clock.now()),
                    model.captures.add(1),
                ],
                condition=model.pk.does_not_exist(),
                add_version_condition=False,
            )
        except UpdateError as exc:
            if not is_conditional_failure(exc):
                raise
            raced = self.lookup(idempotency_key)  # captured before, or by a concurrent attempt
            if raced is None:
                raise
            return raced
        if token.startswith("tok_slow"):
            time.sleep(self._slow)  # captured; the answer is slow to come back
        return Charge(charge_id, idempotency_key, amount, "CAPTURED")

    def _attempt(self, idempotency_key: str) -> int:
        model = self._t.SimulatedCharge
        item = model(f"PAYSIM#{idempotency_key}", "ATTEMPTS")
        item.update(actions=[model.amount.add(1)], add_version_condition=False)
        return int(item.amount)

    @translate_errors
    def refund(self, charge: Charge) -> Charge:
        model = self._t.SimulatedCharge
        item = model(*self._key(charge.order_id))
        try:
            item.update(
                actions=[model.status.set("REFUNDED"), model.refunded_at.set(self._clock.now())],
                condition=model.status == "CAPTURED",
                add_version_condition=False,
            )
        except UpdateError as exc:
            if not is_conditional_failure(exc):
                raise
        return replace(charge, status=REFUNDED)
