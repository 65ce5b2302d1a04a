"""Rate limits: a policy ("60/60s") and the GCRA decision for one request.

GCRA (the generic cell rate algorithm) keeps one number per caller: the theoretical arrival
time (TAT) of the next request were requests evenly spaced at `period / limit`. A request is
allowed while that time is at most `period` ahead of now, which lets a caller spend the whole
budget in a burst and then refills it smoothly, with no window edges to game. The Redis
adapter runs the same arithmetic in one Lua script; `gcra` here is the reference the fake
uses and the tests compare against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

ROUTE_CLASSES = ("reads", "writes", "orders", "health")
# Per route class: requests per period, per caller (sub, or source IP when anonymous).
DEFAULT_LIMITS = {"reads": "300/60s", "writes": "60/60s", "orders": "10/60s", "health": "off"}
_UNITS = {"s": 1, "m": 60, "h": 3600}
_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")


@dataclass(frozen=True)
class RatePolicy:
    limit: int
    period_seconds: int

    @property
    def interval_ms(self) -> float:
        """The emission interval: one request's worth of budget refills in this time."""
        return self.period_seconds * 1000 / self.limit

    def header(self) -> str:
        """The RateLimit-Policy value, e.g. `60;w=60`."""
        return f"{self.limit};w={self.period_seconds}"


def parse_policy(spec: str) -> RatePolicy | None:
    """ "60/60s", "10/m", "1000/1h"; "off" (or "0") for no limit."""
    if spec.strip().lower() in ("off", "0", "none", ""):
        return None
    m = _SPEC.match(spec)
    if not m:
        raise ValueError(f"a rate limit looks like 60/60s, not {spec!r}")
    limit, count, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3)
    period = count * _UNITS[unit]
    if limit < 1 or period < 1:
        raise ValueError(f"a rate limit needs a positive count and period: {spec!r}")
    return RatePolicy(limit, period)


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the whole budget is back
    retry_after_seconds: int  # until the next request would be allowed; 0 when allowed

    def headers(self, policy: RatePolicy) -> dict[str, str]:
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
            "RateLimit-Policy": policy.header(),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after_seconds)
        return out


def gcra(tat_ms: float | None, now_ms: float, policy: RatePolicy) -> tuple[RateDecision, float]:
    """The decision for one request and the TAT to store (unchanged when denied)."""
    interval = policy.interval_ms
    period = policy.period_seconds * 1000
    tat = max(tat_ms or now_ms, now_ms)
    new_tat = tat + interval
    allow_at = new_tat - period
    if now_ms < allow_at:
        decision = RateDecision(
            allowed=False,
            limit=policy.limit,
            remaining=0,
            reset_seconds=math.ceil((tat - now_ms) / 1000),
            retry_after_seconds=max(1, math.ceil((allow_at - now_ms) / 1000)),
        )
        return decision, tat
    decision = RateDecision(
        allowed=True,
        limit=policy.limit,
        remaining=math.floor((now_ms - allow_at) / interval + 1e-9),
        reset_seconds=math.ceil((new_tat - now_ms) / 1000),
        retry_after_seconds=0,
    )
    return decision, new_tat
