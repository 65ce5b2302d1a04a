"""How long a failed queue message waits before its next delivery, how long all its
deliveries together last (the retry budget an outage must fit in), and the soonest its dead
letter can follow (which tells a dead letter from a replayed event).

A message is received at most `max_receives` times (the queue's maxReceiveCount) before
SQS moves it to its dead-letter queue. After the n-th failed receive it waits
min(cap, base * 2^(n-1)) seconds. With the template's defaults (base 2 s, cap 300 s, 12
receives) the budget is 2+4+...+256 + 3*300 = 1,410 s, about 23 minutes: an outage of the
payment provider or the table shorter than that dead-letters nothing.
"""

from __future__ import annotations


def backoff_seconds(receives: int, base: int, cap: int) -> int:
    """The delay after the `receives`-th failed delivery."""
    return int(min(cap, base * 2 ** min(max(0, receives - 1), 32)))  # the cap comes first


def retry_budget_seconds(max_receives: int, base: int, cap: int) -> int:
    """Time from the first delivery to the last one: the sum of the waits between them
    (processing time not counted, so the real budget is a little longer)."""
    return sum(backoff_seconds(n, base, cap) for n in range(1, max_receives))


# HandleDeadLetters believes a dead letter only of an order that has been in its state at least
# this long (DEAD_LETTER_MIN_AGE_SECONDS; funcmart.services.orders.DeadLetterPolicy). A message
# that exhausted its retries cannot arrive sooner after its event was published, and every
# order event is published once its order is in the state the event is for. It must not exceed
# the earliest dead letter of any transport deployed (below; tests/platforms checks it against
# template.yaml and infra/): with the template's defaults, 974 s on SQS and 4,094 s on Knative.
DEAD_LETTER_MIN_AGE_SECONDS = 900


def earliest_sqs_dead_letter_seconds(
    max_receives: int, base: int, cap: int, visibility_timeout: int
) -> int:
    """The least time from a message's first receive to its dead letter on SQS.

    After its n-th failed receive a message waits its backoff (the consumer sets it), or the
    queue's visibility timeout where the backoff was not set (a record not started, an
    invocation lost, the call refused), whichever is shorter; it is dead-lettered on a receive
    after the last of `max_receives`. The wait after the last receive is not counted, so this
    is a lower bound."""
    return sum(
        min(backoff_seconds(n, base, cap), visibility_timeout) for n in range(1, max_receives)
    )


def earliest_broker_dead_letter_seconds(retries: int, delay: float, policy: str) -> float:
    """The least time from a CloudEvent's first delivery to its dead letter on Knative Eventing.

    Retry n (1-based) waits backoffDelay * 2^(n-1) ("exponential") or backoffDelay * (n-1)
    ("linear") after the failure before it, or longer where a Retry-After is honoured (the
    dispatcher's retries count from 0); the dead letter is sent when the last retry fails."""
    if policy == "exponential":
        return sum(delay * (1 << (n - 1)) for n in range(1, retries + 1))
    if policy == "linear":
        return sum(delay * (n - 1) for n in range(1, retries + 1))
    raise ValueError(f"unknown backoff policy {policy!r}")
