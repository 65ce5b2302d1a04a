"""No input and no event shape makes a function crash or answer 500.

Every function of the template (imported as the runtime does, on DynamoDB Local, the test
Redis and moto's SQS) is handed:
- the four sample events the SAM CLI generates (tests/data/sam-events: HTTP API payload 2.0,
  REST API payload 1.0, an SQS batch, an EventBridge schedule), each function every shape;
- HTTP events generated from the payload 2.0 schema for its own route: any headers, query,
  cookies, claims, bodies of any JSON depth, base64 of any bytes, fields dropped or replaced
  by any JSON value;
- SQS batches generated from the record schema: any attribute values, bodies, records that
  are not objects, records without a usable messageId.

An HTTP function answers a valid API Gateway response: 2xx, or 4xx problem+json. A queue
function answers a batch response Lambda accepts, naming only records of the batch, and the
whole batch (an empty itemIdentifier) exactly when a record has no usable messageId.
FUNCMART_PROPERTY_EXAMPLES sets the generated events per function (default 25).
"""

from __future__ import annotations

import collections
import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import Template
from funcmart_hosts.local.resources import Deployment
from tests.support import report
from tests.support.strategies import http_events, sqs_events

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]
SAM_EVENTS = Path(__file__).parents[1] / "data" / "sam-events"
SHAPES = ["apigateway-http-api-proxy", "apigateway-aws-proxy", "sqs-receive-message"]
SHAPES += ["eventbridge-scheduled"]
EXAMPLES = int(os.environ.get("FUNCMART_PROPERTY_EXAMPLES", "25"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same cases on every run: a failure here is reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
generated: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_generated_cases() -> Any:
    """The closing summary says how many cases this module fed to functions."""
    yield
    report.add(
        "generated inputs",
        f"{sum(generated.values())} events fed to functions, zero 5xx, zero crashes "
        f"({generated['sam']} from SAM CLI samples, {generated['http']} HTTP events, "
        f"{generated['sqs']} SQS batches)",
    )


def sam_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((SAM_EVENTS / f"{name}.json").read_text())
    return event


def kind_of(tpl: Template, function: str) -> str:
    fn = tpl.functions[function]
    return "http" if fn.routes else "queue" if fn.queues else "schedule"


def functions_of(kind: str) -> list[str]:
    from funcmart_hosts.gateway.template import load

    tpl = load()
    return sorted(lid for lid in tpl.functions if kind_of(tpl, lid) == kind)


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000000000000000000000000a01", path)


# ------------------------------------------------------------------------------ judges
def assert_http_answer(answer: Any) -> int:
    """A response API Gateway accepts: 2xx, or 4xx problem+json with its own status."""
    assert isinstance(answer, dict), answer
    status = answer["statusCode"]
    assert isinstance(status, int), answer
    assert 200 <= status < 500, answer
    headers = answer.get("headers") or {}
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()), headers
    assert not any("\r" in v or "\n" in v for v in headers.values()), headers
    assert isinstance(answer.get("body", ""), str)
    if status >= 400:
        assert headers["Content-Type"] == "application/problem+json", answer
        problem = json.loads(answer["body"])
        assert problem["status"] == status
        assert problem["title"]
        assert problem["detail"]
    return status


def usable_id(record: Any) -> str | None:
    """A messageId a batch response can name: a string with something in it."""
    mid = record.get("messageId") if isinstance(record, dict) else None
    return mid if isinstance(mid, str) and mid.strip() else None


def assert_batch_answer(event: Any, answer: Any) -> None:
    """A partial-batch response naming only records of the batch, or failing the whole
    batch on purpose when a record cannot be named."""
    assert isinstance(answer, dict), answer
    assert isinstance(answer["batchItemFailures"], list), answer
    named = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        assert named == [], "not an SQS event: nothing to redeliver"
        return
    ids = [usable_id(r) for r in records]
    if None in ids:
        assert named == [""], "a record without a usable id fails the whole batch"
    else:
        assert set(named) <= set(ids), (named, ids)


# ------------------------------------------------------------------ the SAM CLI's shapes
def test_the_sam_samples_are_the_cli_output() -> None:
    version = (SAM_EVENTS / "sam-version.txt").read_text()
    assert version.startswith("SAM CLI, version"), "regenerate with make sam-events"
    assert sam_event("apigateway-http-api-proxy")["version"] == "2.0"
    assert sam_event("apigateway-aws-proxy")["httpMethod"] == "POST"
    assert sam_event("sqs-receive-message")["Records"][0]["eventSource"] == "aws:sqs"
    assert sam_event("eventbridge-scheduled")["detail-type"] == "Scheduled Event"


@pytest.mark.parametrize("shape", SHAPES)
def test_every_function_takes_every_sam_shape(
    handlers: dict[str, Handler], tpl: Template, shape: str
) -> None:
    for function, handler in sorted(handlers.items()):
        event = sam_event(shape)
        answer = handler(copy.deepcopy(event), None)
        generated["sam"] += 1
        kind = kind_of(tpl, function)
        if kind == "http":
            status = assert_http_answer(answer)
            if shape != "apigateway-http-api-proxy":  # its path is no route of ours: 404
                assert status == 400, (function, answer)
            if shape == "apigateway-aws-proxy":
                assert "payload format 2.0" in json.loads(answer["body"])["detail"]
        elif kind == "queue":
            assert_batch_answer(event, answer)
        else:
            assert isinstance(answer, dict), (function, answer)


@pytest.mark.parametrize("function", functions_of("http"))
def test_every_http_function_takes_the_sam_event_for_its_route(
    handlers: dict[str, Handler], tpl: Template, function: str
) -> None:
    """What `sam local generate-event apigateway http-api-proxy --method M --path P` gives
    (its sample body, base64 {"test":"body"}, and claims without a sub)."""
    route = tpl.functions[function].routes[0]
    event = sam_event("apigateway-http-api-proxy")
    path = concrete(route.path)
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = route.method
    status = assert_http_answer(handlers[function](event, None))
    generated["sam"] += 1
    assert status in (200, 400, 401, 403, 404, 415, 422), status


@pytest.mark.parametrize("function", functions_of("queue"))
def test_every_queue_function_takes_the_sam_batch(
    handlers: dict[str, Handler], deployment: Deployment, tpl: Template, function: str
) -> None:
    """The sample batch (its body is no order event: reported failed, by its id), and the
    same record carrying an order event, from the function's own queue."""
    queue = deployment.queues[tpl.functions[function].queues[0].queue]
    event = sam_event("sqs-receive-message")
    record = event["Records"][0]
    record["eventSourceARN"] = queue.arn
    answer = handlers[function](copy.deepcopy(event), None)
    assert_batch_answer(event, answer)
    assert answer["batchItemFailures"] in ([], [{"itemIdentifier": record["messageId"]}])
    record["body"] = json.dumps({"type": "OrderPlaced", "orderId": "o-unknown"})
    assert_batch_answer(event, handlers[function](copy.deepcopy(event), None))
    generated["sam"] += 2


# ---------------------------------------------------------------- generated from schemas
@pytest.mark.parametrize("function", functions_of("http"))
def test_every_http_function_answers_any_event_below_500(
    handlers: dict[str, Handler], tpl: Template, function: str
) -> None:
    route = tpl.functions[function].routes[0]

    @PROPERTY
    @given(event=http_events(route.method, concrete(route.path)))
    def answers(event: dict[str, Any]) -> None:
        generated["http"] += 1
        assert_http_answer(handlers[function](event, None))

    answers()


@pytest.mark.parametrize("function", functions_of("queue"))
def test_every_queue_function_answers_any_batch_as_lambda_accepts(
    handlers: dict[str, Handler], deployment: Deployment, tpl: Template, function: str
) -> None:
    queue = deployment.queues[tpl.functions[function].queues[0].queue]

    @PROPERTY
    @given(event=sqs_events(queue.arn))
    def answers(event: Any) -> None:
        generated["sqs"] += 1
        assert_batch_answer(event, handlers[function](copy.deepcopy(event), None))

    answers()


@pytest.mark.parametrize("function", functions_of("http"))
def test_http_functions_refuse_other_event_kinds(
    handlers: dict[str, Handler], function: str
) -> None:
    @PROPERTY
    @given(event=sqs_events("arn:aws:sqs:us-east-1:123456789012:q") | st.text() | st.none())
    def refused(event: Any) -> None:
        generated["http"] += 1
        assert assert_http_answer(handlers[function](event, None)) == 400

    refused()
