"""GetProduct's cache-hit work in FastAPI: an async endpoint on redis.asyncio with a response
model, as FastAPI's documentation writes one. `uvicorn bench.peer_apps.fastapi_app:app`."""

from __future__ import annotations

import json
import os
from typing import Any

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Request, Response

from bench.peer_apps import RATE_LIMIT_SCRIPT, decision, policy, script_args
from funcmart.api.catalog import ProductOut

app = FastAPI()
POLICY = policy()
ARGS = script_args(POLICY)
client = aioredis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
limit_and_read = client.register_script(RATE_LIMIT_SCRIPT)


@app.get("/products/{product_id}", response_model=ProductOut)
async def get_product(product_id: str, request: Request, response: Response) -> Any:
    caller = request.client.host if request.client else "unknown"
    allowed, remaining, reset_ms, _retry, *values = await limit_and_read(
        keys=[f"ratelimit:reads:ip:{caller}", f"product:{product_id}"], args=ARGS
    )
    d = decision(POLICY, allowed, remaining, reset_ms)
    if not d.allowed:
        raise HTTPException(429, "too many requests", headers=d.headers(POLICY))
    raw = values[0] if values else None
    if not isinstance(raw, str) or raw == "-":
        raise HTTPException(503, "not cached: this peer serves cache hits only")
    response.headers.update({"X-Cache": "HIT", **d.headers(POLICY)})
    return json.loads(raw)
