"""What a user would pick instead of funcmart for GetProduct's cache-hit work: the same Redis
work (funcmart's rate-limit script reading the product's cache entry in the same call) and the
same answer (the product as JSON, `X-Cache: HIT`, the RateLimit headers), written the way each
framework's documentation shows. Run by `bench.peers`; served only on 127.0.0.1.

Configured from the environment: REDIS_URL (funcmart's own variable) and RATE_LIMIT (the
policy, as funcmart's functions read it).
"""

from __future__ import annotations

import os

from funcmart.adapters.redis_store import _GCRA as RATE_LIMIT_SCRIPT
from funcmart.domain.ratelimit import RateDecision, RatePolicy, parse_policy

__all__ = ["RATE_LIMIT_SCRIPT", "decision", "policy", "script_args"]


def policy() -> RatePolicy:
    parsed = parse_policy(os.environ.get("RATE_LIMIT", "300/60s"))
    assert parsed is not None, "the peers always rate-limit, as funcmart's GetProduct does"
    return parsed


def script_args(p: RatePolicy) -> list[object]:
    return [repr(p.interval_ms), p.period_seconds * 1000]


def decision(p: RatePolicy, allowed: object, remaining: object, reset_ms: object) -> RateDecision:
    import math

    ok = int(str(allowed)) == 1
    return RateDecision(
        allowed=ok,
        limit=p.limit,
        remaining=max(0, int(str(remaining))),
        reset_seconds=math.ceil(float(str(reset_ms)) / 1000),
        retry_after_seconds=0 if ok else 1,
    )
