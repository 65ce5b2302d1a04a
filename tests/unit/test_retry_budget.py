"""A 15-minute outage strands nothing: the template's retry budget, replayed on a fake clock.

The queue below behaves as SQS does for our consumers: a failed message becomes visible
again after the backoff the consumer sets (the template's base and cap), and after
maxReceiveCount deliveries it moves to the dead-letter queue, where HandleDeadLetters flags
its order. ReconcileOrders runs every minute and sees the queue's backlog. Nothing sleeps:
the clock jumps from one event to the next.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from funcmart.domain import orders as model
from funcmart.domain.commands import PlaceOrder
from funcmart.domain.errors import DependencyUnavailable, DomainError
from funcmart.domain.orders import OrderPlaced, RequestedLine
from funcmart.domain.retries import (
    backoff_seconds,
    earliest_broker_dead_letter_seconds,
    earliest_sqs_dead_letter_seconds,
    retry_budget_seconds,
)
from funcmart.services import orders
from funcmart_hosts.gateway import template
from tests.support.builders import customer, fake_order_ports, fake_product, random_id

OUTAGE_SECONDS = 15 * 60


def template_budget() -> tuple[int, int, int]:
    """maxReceiveCount, backoff base and cap as the template deploys them."""
    tpl = template.load()
    params = tpl.raw["Parameters"]
    receives = {q.max_receive_count for q in tpl.queues.values() if q.max_receive_count}
    assert len(receives) == 1, "every source queue shares one budget"
    return (
        receives.pop(),
        int(params["RetryBackoffBaseSeconds"]["Default"]),
        int(params["RetryBackoffMaxSeconds"]["Default"]),
    )


@dataclass
class Message:
    event: model.Event
    visible_at: float
    receives: int = 0


class SimulatedQueues:
    """The two pipeline queues and their dead-letter queues, on the test's clock."""

    def __init__(self, ns, max_receives: int, base: int, cap: int) -> None:
        self.ns, self.max_receives, self.base, self.cap = ns, max_receives, base, cap
        # HandleDeadLetters deployed with these queues: it believes a dead letter no sooner
        # than their earliest (the visibility timeout above the backoff's cap: unused).
        earliest = earliest_sqs_dead_letter_seconds(max_receives, base, cap, cap)
        self.dead_letters = orders.DeadLetterPolicy(min_age_seconds=earliest)
        self.messages: list[Message] = []
        self.dead_lettered: list[model.Event] = []

    def publish_pending(self) -> None:
        for event in self.ns.publisher.published:
            self.messages.append(Message(event, self.ns.clock.epoch()))
        self.ns.publisher.published.clear()

    def waiting(self, event_type: str) -> int:
        return sum(1 for m in self.messages if m.event.type == event_type)

    def deliver_due(self) -> None:
        now = self.ns.clock.epoch()
        for m in [m for m in self.messages if m.visible_at <= now]:
            m.receives += 1
            try:
                if isinstance(m.event, OrderPlaced):
                    orders.process_order(self.ns.ports, m.event)
                else:
                    orders.fulfil_order(self.ns.ports, m.event)
            except DomainError:
                if m.receives >= self.max_receives:
                    self.messages.remove(m)
                    self.dead_lettered.append(m.event)
                    orders.handle_dead_letter(self.ns.ports, self.dead_letters, m.event, "dlq")
                else:
                    m.visible_at = now + backoff_seconds(m.receives, self.base, self.cap)
            else:
                self.messages.remove(m)
        self.publish_pending()

    def next_due(self) -> float | None:
        return min((m.visible_at for m in self.messages), default=None)


class Backlog:
    def __init__(self, queues: SimulatedQueues) -> None:
        self.queues = queues

    def waiting(self, event_type: str) -> int:
        return self.queues.waiting(event_type)


def outage(ns, kind: str, until: float) -> None:
    """Make the payment provider, or the table, fail until the clock reaches `until`."""
    if kind == "payments":
        real_charge = ns.payments.charge

        def charge(*args):
            ns.payments.down = ns.clock.epoch() < until
            return real_charge(*args)

        ns.payments.charge = charge
    else:
        real_get = ns.orders.get

        def get(order_id):
            if ns.clock.epoch() < until:
                raise DependencyUnavailable("the table does not answer")
            return real_get(order_id)

        ns.orders.get = get


def run(kind: str, max_receives: int, base: int, cap: int):
    ns = fake_order_ports()
    pid = fake_product(ns, stock=1000)
    start = ns.clock.epoch()
    outage(ns, kind, start + OUTAGE_SECONDS)
    queues = SimulatedQueues(ns, max_receives, base, cap)
    placed = []
    # 20 orders over the first ten minutes of the outage (PlaceOrder's own writes are not
    # part of the outage: the table outage starts right after they committed)
    for i in range(20):
        ns.clock.t = start + i * 30
        body = {"i": i}
        p = orders.place_order(
            ns.ports,
            customer(),
            PlaceOrder(
                idempotency_key=random_id(),
                lines=[RequestedLine(pid, 1)],
                payment_token="tok_ok",
                request_body=body,
                correlation_id="c",
            ),
        )
        placed.append(p.body["id"])
        queues.publish_pending()
    ns.clock.t = start
    next_reconcile = start + 60
    end = start + 3 * OUTAGE_SECONDS
    steps = 0
    while ns.clock.epoch() < end and steps < 100_000:
        steps += 1
        queues.deliver_due()
        due = queues.next_due()
        ns.clock.t = min(next_reconcile, due if due is not None else end, end)
        if ns.clock.t >= next_reconcile:
            orders.reconcile_orders(ns.ports, orders.ReconcilePolicy(), Backlog(queues))
            queues.publish_pending()
            next_reconcile += 60
    return ns, queues, placed


def test_the_templates_budget_outlasts_a_15_minute_outage() -> None:
    max_receives, base, cap = template_budget()
    assert retry_budget_seconds(max_receives, base, cap) > OUTAGE_SECONDS


def test_the_earliest_dead_letters_of_the_deployed_retry_policies() -> None:
    # SQS, the template's defaults: each wait the backoff or the visibility timeout (180 s),
    # whichever is shorter, over the eleven waits between twelve receives
    assert (
        earliest_sqs_dead_letter_seconds(12, 2, 300, 180)
        == 2 + 4 + 8 + 16 + 32 + 64 + 128 + 4 * 180
    )
    # Knative: eleven retries of an exponential PT2S wait 2 s, 4 s, ... 2,048 s
    assert earliest_broker_dead_letter_seconds(11, 2, "exponential") == 4094
    assert earliest_broker_dead_letter_seconds(3, 2, "linear") == 0 + 2 + 4
    with pytest.raises(ValueError, match="backoff policy"):
        earliest_broker_dead_letter_seconds(3, 2, "fibonacci")


@pytest.mark.parametrize("kind", ["payments", "table"])
def test_a_15_minute_outage_strands_nothing(kind: str) -> None:
    ns, queues, placed = run(kind, *template_budget())
    assert queues.dead_lettered == []
    states = {ns.orders.get(oid).status for oid in placed}
    assert states == {model.FULFILLED}
    assert ns.payments.capture_calls == len(placed)
    for oid in placed:
        assert ns.orders.get_charge(oid).status == ns.payments.lookup(oid).status


def test_the_old_budget_would_have_stranded_them() -> None:
    # five deliveries, 2 s base: about a minute of retries, as before this budget
    ns, queues, placed = run("payments", 5, 2, 300)
    assert queues.dead_lettered
    assert {ns.orders.get(oid).status for oid in placed} == {model.NEEDS_ATTENTION}
    # every dead letter came after the earliest the queues allow: none was taken for a replay
    assert "DeadLettersTooEarly" not in ns.metrics.counters


def test_the_reconciler_does_not_flag_orders_that_are_being_retried() -> None:
    ns, _, _ = run("payments", *template_budget())
    assert ns.metrics.counters.get("ReconciledFlagged", 0) == 0
    assert ns.metrics.counters.get("ReconciledBacklogged", 0) > 0


def test_the_simulation_delivers_a_healthy_pipeline_at_once() -> None:
    ns = fake_order_ports()
    pid = fake_product(ns)
    q = SimulatedQueues(ns, 12, 2, 300)
    oid = orders.place_order(
        ns.ports,
        customer(),
        PlaceOrder(
            idempotency_key=random_id(),
            lines=[RequestedLine(pid, 1)],
            payment_token="tok_ok",
            request_body={},
            correlation_id="c",
        ),
    ).body["id"]
    q.publish_pending()
    q.deliver_due()  # OrderPlaced: paid, OrderPaid published
    q.deliver_due()  # OrderPaid: fulfilled
    assert ns.orders.get(oid).status == model.FULFILLED
    assert q.messages == []
    assert q.dead_lettered == []
