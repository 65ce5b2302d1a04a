"""GetProduct's cache-hit work in Flask: a view on a redis-py client, as Flask's documentation
writes one. `gunicorn --workers 1 --worker-class sync bench.peer_apps.flask_app:app`."""

from __future__ import annotations

import json
import os

import flask
import redis

from bench.peer_apps import RATE_LIMIT_SCRIPT, decision, policy, script_args

app = flask.Flask(__name__)
POLICY = policy()
ARGS = script_args(POLICY)
client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
limit_and_read = client.register_script(RATE_LIMIT_SCRIPT)


@app.get("/products/<product_id>")
def get_product(product_id: str) -> flask.Response:
    caller = flask.request.remote_addr or "unknown"
    allowed, remaining, reset_ms, _retry, *values = limit_and_read(
        keys=[f"ratelimit:reads:ip:{caller}", f"product:{product_id}"], args=ARGS
    )
    d = decision(POLICY, allowed, remaining, reset_ms)
    if not d.allowed:
        return flask.Response("too many requests", 429, headers=d.headers(POLICY))
    raw = values[0] if values else None
    if not isinstance(raw, str) or raw == "-":
        return flask.Response("not cached: this peer serves cache hits only", 503)
    answer = flask.jsonify(json.loads(raw))
    answer.headers.update({"X-Cache": "HIT", **d.headers(POLICY)})
    return answer
