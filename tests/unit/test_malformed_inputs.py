"""Malformed inputs at the entry points, over fakes: the HTTP side refuses what is not an HTTP
API payload 2.0 event (and bodies nested too deep) with one clear 400, hides what failed
behind a 503, and the queue side answers any record shape with a response Lambda accepts.

Property tests generate events from the schemas (tests/support/strategies.py); the examples
pin the cases the issue names. tests/functions/test_any_input.py feeds the real functions.
"""

from __future__ import annotations

import collections
import copy
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcmart.api.catalog import NewProduct
from funcmart.bootstrap import Container, build
from funcmart.domain import errors
from funcmart.entrypoints.http import HttpFunction, nests_deeper_than
from funcmart.entrypoints.queue import QueueFunction, QueueMessage, receive_count, to_message
from funcmart.settings import Settings
from tests.fakes import FakeClock, FakeMetrics, FakeRateLimiter
from tests.support import report
from tests.support.events import http_event
from tests.support.strategies import deep_json, http_events, sqs_events
from tests.unit.test_queue_batches import ARN, FakeSqs, batch

FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


generated: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_generated_cases() -> Iterator[None]:
    yield
    report.add(
        "generated inputs over fakes",
        f"{sum(generated.values())} events, zero 5xx, zero crashes ({generated['json']} JSON "
        f"bodies of any depth, {generated['http']} HTTP events, {generated['sqs']} SQS batches)",
    )


def make_app(fail_with: Exception | None = None) -> HttpFunction:
    settings = Settings.load({}, table_name="t", rate_limit="off")
    deps = Container(settings, rate_limiter=FakeRateLimiter(FakeClock()), metrics=FakeMetrics())
    app = HttpFunction(deps)

    @app.post("/products")
    def create(body: NewProduct) -> dict[str, str]:
        if fail_with is not None:
            raise fail_with
        return {"name": body.name}

    @app.get("/products/<productId>")
    def read(productId: str) -> dict[str, str]:
        return {"id": productId}

    return app


def problem_of(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["headers"]["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(answer["body"])
    assert body["status"] == answer["statusCode"]
    return body


# ---------------------------------------------------------------------------- HTTP side
REST_API_EVENT = {
    "resource": "/products",
    "path": "/products",
    "httpMethod": "POST",
    "headers": {"content-type": "application/json"},
    "multiValueHeaders": {},
    "requestContext": {"requestId": "r-1", "httpMethod": "POST", "stage": "prod"},
    "body": "{}",
    "isBase64Encoded": False,
}


def test_a_rest_api_event_gets_one_400_naming_what_is_expected() -> None:
    answer = make_app().handler(copy.deepcopy(REST_API_EVENT), None)
    assert answer["statusCode"] == 400
    problem = problem_of(answer)
    assert problem["title"] == "Unsupported event"
    assert "payload format 2.0" in problem["detail"]
    assert "HTTP API" in problem["detail"]
    assert problem["requestId"] == "r-1"


@pytest.mark.parametrize(
    "event",
    [None, [], "GET /products", 7, {}, {"requestContext": {}}, {"Records": []}],
)
def test_anything_else_is_a_malformed_event(event: Any) -> None:
    answer = make_app().handler(event, None)
    assert answer["statusCode"] == 400
    assert problem_of(answer)["title"] == "Malformed event"


@pytest.mark.parametrize(
    "body",
    ['{"name":' * 65 + "1" + "}" * 65, '{"name":' * 5_000 + "1" + "}" * 5_000, "[" * 32_000],
)
def test_a_deeply_nested_body_is_a_400_not_a_recursion_error(body: str) -> None:
    answer = make_app().handler(http_event("POST", "/products", body), None)
    assert answer["statusCode"] == 400
    assert "deeper than 64" in problem_of(answer)["detail"]


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert not nests_deeper_than(json.dumps({"name": "[" * 500}), 64)
    assert not nests_deeper_than(json.dumps({"name": '\\"' + "{" * 500}), 64)
    assert nests_deeper_than("[" * 65, 64)
    assert not nests_deeper_than("[" * 64 + "]" * 64, 64)


def test_a_503_says_nothing_of_what_failed_and_logs_it_with_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = errors.DependencyUnavailable(
        "DynamoDB is unavailable (Could not connect to http://10.0.0.7:8000)", retry_after=3
    )
    body = {"name": "Dune", "category": "books", "price": {"amount": 1, "currency": "EUR"}}
    event = http_event("POST", "/products", body)
    answer = make_app(fail_with=failure).handler(event, None)
    assert answer["statusCode"] == 503
    assert answer["headers"]["Retry-After"] == "3"
    problem = problem_of(answer)
    assert "10.0.0.7" not in answer["body"]
    assert "DynamoDB" not in answer["body"]
    assert problem["detail"] == "a service this function depends on did not answer; retry in 3 s"
    logged = [vars(r) for r in caplog.records if r.getMessage() == "dependency unavailable"]
    assert "10.0.0.7" in logged[0]["detail"]
    assert logged[0]["requestId"] == event["requestContext"]["requestId"]


@FAST
@given(body=deep_json())
def test_json_of_any_depth_gets_an_answer_below_500(body: str) -> None:
    generated["json"] += 1
    answer = make_app().handler(http_event("POST", "/products", body), None)
    assert 200 <= answer["statusCode"] < 500, answer


@FAST
@given(event=http_events("POST", "/products") | http_events("GET", "/products/p-1"))
def test_any_event_of_the_http_schema_gets_an_answer_below_500(event: dict[str, Any]) -> None:
    generated["http"] += 1
    answer = make_app().handler(event, None)
    assert 200 <= answer["statusCode"] < 500, answer
    if answer["statusCode"] >= 400:
        problem_of(answer)


# --------------------------------------------------------------------------- queue side
def consumer(outcome: Any = "done") -> QueueFunction:
    def on_message(message: QueueMessage) -> Any:
        event = message.event()  # InvalidRequest for a body that is no order event
        if outcome == "fail":
            raise RuntimeError(event.order_id)
        return outcome

    deps = build(Settings.load({}, table_name="t"), metrics=FakeMetrics(), sqs_client=FakeSqs())
    return QueueFunction(deps, on_message)


def test_a_record_that_is_not_an_object_fails_the_whole_batch_on_purpose(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = batch(3)
    event["Records"].append("not a record")
    assert consumer().handler(event, None) == {"batchItemFailures": [{"itemIdentifier": ""}]}
    assert any("without a usable messageId" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad_id", [None, "", "  ", 7, ["m1"]])
def test_a_record_without_a_usable_id_fails_the_whole_batch(bad_id: Any) -> None:
    event = batch(2)
    event["Records"][1]["messageId"] = bad_id
    assert consumer().handler(event, None) == {"batchItemFailures": [{"itemIdentifier": ""}]}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("body", None),
        ("body", {"type": "OrderPaid"}),
        ("attributes", "x"),
        ("attributes", {"ApproximateReceiveCount": "99999999999999999999"}),
        ("attributes", {"ApproximateReceiveCount": [1]}),
        ("messageAttributes", {"correlationId": "c"}),
        ("messageAttributes", []),
        ("eventSourceARN", 12),
        ("eventSourceARN", "arn:aws:sqs"),
        ("receiptHandle", None),
    ],
)
def test_a_malformed_field_fails_only_its_record(field: str, value: Any) -> None:
    event = batch(3)
    event["Records"][1][field] = value
    started = time.monotonic()
    answer = consumer("fail").handler(event, None)
    assert {f["itemIdentifier"] for f in answer["batchItemFailures"]} == {"m0", "m1", "m2"}
    answer = consumer().handler(event, None)
    assert answer["batchItemFailures"] in ([], [{"itemIdentifier": "m1"}])
    assert time.monotonic() - started < 5  # no back-off of 2**(huge) seconds computed


@pytest.mark.parametrize(
    ("raw", "expected"), [("3", 3), ("0", 1), ("-2", 1), ("x", 1), (None, 1), ("1e3", 1)]
)
def test_receive_counts_are_parsed_defensively(raw: Any, expected: int) -> None:
    assert receive_count({"attributes": {"ApproximateReceiveCount": raw}}) == expected


def test_a_message_takes_its_correlation_id_from_the_attribute_or_the_body() -> None:
    record = batch(1)["Records"][0]
    assert to_message(record).correlation_id == "c0"
    record["messageAttributes"] = {"correlationId": {"stringValue": "from-attr"}}
    assert to_message(record).correlation_id == "from-attr"


@FAST
@given(event=sqs_events(ARN), outcome=st.sampled_from(["done", "fail"]))
def test_any_batch_of_the_sqs_schema_gets_an_answer_lambda_accepts(
    event: Any, outcome: str
) -> None:
    generated["sqs"] += 1
    answer = consumer(outcome).handler(copy.deepcopy(event), None)
    named = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list):
        assert named == []
        return
    ids = [r.get("messageId") if isinstance(r, dict) else None for r in records]
    if any(not (isinstance(i, str) and i.strip()) for i in ids):
        assert named == [""]
    else:
        assert set(named) <= set(ids)
        if outcome == "fail":  # every record failed: every one is named
            assert set(named) == set(ids)


def test_a_body_of_many_unknown_keys_names_a_bounded_number_of_issues() -> None:
    body = {"name": "Dune", "category": "books", "price": {"amount": 1, "currency": "EUR"}}
    body.update({f"k{n}" + "x" * 120: n for n in range(400)})
    answer = make_app().handler(http_event("POST", "/products", body), None)
    problem = problem_of(answer)
    assert answer["statusCode"] == 400
    assert len(problem["errors"]) == 20
    assert all(len(issue["field"]) <= 100 for issue in problem["errors"])


def test_a_queue_body_nested_past_the_parser_is_not_an_event_not_a_crash() -> None:
    message = to_message({"messageId": "m-deep", "body": "[" * 30000 + "]" * 30000})
    with pytest.raises(errors.InvalidRequest):
        message.event()
