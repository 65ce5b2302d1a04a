"""POST /operations/dead-letters/redrive (admin): every dead-letter queue's messages moved
back to its source queue (SQS message move tasks on AWS; message by message locally)."""

from funcmart.api.operations import RedriveOut, RedriveReport
from funcmart.bootstrap import build
from funcmart.entrypoints.http import HttpFunction, Response, json_response
from funcmart.services import operations

deps = build().ready("redrive")
app = HttpFunction(deps, problems=(403,))


@app.post("/operations/dead-letters/redrive", status_code=202)
def redrive_dead_letters() -> Response[RedriveReport]:
    moved = operations.redrive_dead_letters(deps.redrive, app.principal())
    report = RedriveReport(queues=[RedriveOut.of(r) for r in moved])
    return json_response(report.model_dump(), 202)


handler = app.handler
