"""GET /health (public): DynamoDB and Redis reachability and the version; 503 without the
table, 200 with redis "degraded" when only Redis is out."""

from funcmart import __version__
from funcmart.api.health import HealthOut
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import health

deps = build().ready("table_probe", "redis_probe")
app = HttpFunction(deps, also_answers=(503,))


@app.get("/health")
def get_health() -> Response[HealthOut]:
    report = health.check_health(deps.table_probe, deps.redis_probe, __version__)
    return json_response(report.to_dict(), report.http_status, {"Cache-Control": "no-store"})


handler = app.handler
