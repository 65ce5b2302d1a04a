"""How long a failed queue message waits before its next delivery, and how long all its
deliveries together last: the retry budget an outage must fit in.

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
