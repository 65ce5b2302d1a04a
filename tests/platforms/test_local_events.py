"""The local platform builds AWS's event shapes exactly, and maps results back as AWS does."""

import base64
import hashlib
import json

import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    EventBridgeModel,
    SqsModel,
)

from funcmart_hosts.gateway.events import (
    ApiContext,
    HttpRequest,
    api_gateway_claims,
    http_event,
    scheduled_event,
)
from funcmart_hosts.gateway.responses import MalformedResponse, http_response
from funcmart_hosts.gateway.sqs import failed_message_ids, sqs_event

NOW = 1_764_000_000.123  # 2025-11-24T16:00:00Z


def request(**kw):
    base = {
        "method": "GET",
        "target": "/products",
        "headers": [("Host", "127.0.0.1:3000"), ("User-Agent", "pytest")],
    }
    return HttpRequest(**{**base, **kw})


def test_repeated_query_keys_are_comma_joined_and_the_raw_string_kept():
    event = http_event(
        request(target="/products?tag=a&tag=b&empty=&q=two%20words"), "GET /products", now=NOW
    )
    assert event["rawQueryString"] == "tag=a&tag=b&empty=&q=two%20words"
    assert event["queryStringParameters"] == {"tag": "a,b", "empty": "", "q": "two words"}


def test_headers_are_lower_cased_and_repeated_ones_comma_joined():
    headers = [("Host", "h"), ("X-Thing", "1"), ("x-thing", "2"), ("Accept", "a/b")]
    event = http_event(request(headers=headers), "GET /products", now=NOW)
    assert event["headers"]["x-thing"] == "1,2"
    assert event["headers"]["accept"] == "a/b"
    assert all(k == k.lower() for k in event["headers"])
    assert event["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert event["headers"]["x-forwarded-proto"] == "http"


def test_cookies_move_from_the_header_to_the_cookies_array():
    headers = [("Host", "h"), ("Cookie", "a=1; b=2"), ("Cookie", "c=3")]
    event = http_event(request(headers=headers), "GET /products", now=NOW)
    assert event["cookies"] == ["a=1", "b=2", "c=3"]
    assert "cookie" not in event["headers"]


def test_absent_parts_are_left_out_as_api_gateway_does():
    event = http_event(request(), "GET /products", now=NOW)
    for key in ("cookies", "queryStringParameters", "pathParameters", "body"):
        assert key not in event
    assert event["isBase64Encoded"] is False
    assert "authorizer" not in event["requestContext"]  # a public route


def test_json_bodies_are_text_and_binary_bodies_base64():
    text = http_event(
        request(method="POST", headers=[("Content-Type", "application/json")], body=b'{"a":1}'),
        "POST /products",
        now=NOW,
    )
    assert (text["body"], text["isBase64Encoded"]) == ('{"a":1}', False)
    raw = bytes(range(256))
    binary = http_event(
        request(method="POST", headers=[("Content-Type", "image/png")], body=raw),
        "POST /products",
        now=NOW,
    )
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == raw
    untyped = http_event(request(method="POST", body=b"x=1"), "POST /products", now=NOW)
    assert untyped["isBase64Encoded"] is True


@pytest.mark.parametrize("raw", [b'{"name":"Caf\xe9"}', b'{"a":"\xff"}', b'{"a":"\xed\xa0\x80"}'])
def test_a_text_body_that_is_not_utf8_goes_as_the_bytes_sent(raw):
    # A replacement character would hide the bad bytes from the function, which refuses them.
    event = http_event(
        request(method="POST", headers=[("Content-Type", "application/json")], body=raw),
        "POST /products",
        now=NOW,
    )
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == raw


def test_request_context_is_complete():
    event = http_event(
        request(target="/products/p%201?x=1", source_ip="127.0.0.9"),
        "GET /products/{productId}",
        {"productId": "p%201"},
        api=ApiContext(account_id="111122223333", api_id="local", port=3000),
        req_id="rid-1",
        now=NOW,
    )
    ctx = event["requestContext"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == ctx["routeKey"] == "GET /products/{productId}"
    assert event["rawPath"] == "/products/p%201"
    assert event["pathParameters"] == {"productId": "p 1"}
    assert ctx["accountId"] == "111122223333"
    assert ctx["stage"] == "$default"
    assert ctx["requestId"] == "rid-1"
    assert ctx["domainName"] == "127.0.0.1"
    assert ctx["http"] == {
        "method": "GET",
        "path": "/products/p%201",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.9",
        "userAgent": "pytest",
    }
    assert ctx["time"] == "24/Nov/2025:16:00:00 +0000"
    assert ctx["timeEpoch"] == 1_764_000_000_123
    APIGatewayProxyEventV2Model.model_validate(event)


def test_claims_arrive_as_api_gateway_flattens_them():
    claims = {
        "sub": "alice",
        "groups": ["admin", "ops"],
        "exp": 1764003600,
        "email_verified": True,
        "nothing": None,
        "address": {"country": "NL"},
    }
    event = http_event(request(), "POST /products", claims=claims, now=NOW)
    jwt = event["requestContext"]["authorizer"]["jwt"]
    assert jwt["claims"] == {
        "sub": "alice",
        "groups": "[admin ops]",
        "exp": "1764003600",
        "email_verified": "true",
        "address": '{"country":"NL"}',
    }
    assert jwt["scopes"] is None
    APIGatewayProxyEventV2Model.model_validate(event)


def test_the_http_platform_reads_flattened_groups_back():
    from funcmart.entrypoints.http import principal_from_claims

    principal = principal_from_claims(api_gateway_claims({"sub": "a", "groups": ["admin"]}))
    assert principal is not None
    assert principal.is_admin


@pytest.mark.parametrize("groups", [["Store admin"], ["billing,admin"], ["x", "[admin]"]])
def test_group_names_with_separators_never_flatten_into_admin(groups):
    from funcmart.entrypoints.http import principal_from_claims

    claims = api_gateway_claims({"sub": "a", "groups": groups, "cognito:groups": groups})
    assert "admin" not in claims["groups"].strip("[]").split(" ")
    principal = principal_from_claims(claims)
    assert principal is not None
    assert not principal.is_admin


def test_exact_group_names_survive_flattening():
    claims = api_gateway_claims({"sub": "a", "groups": ["Store admin", "billing", "admin"]})
    assert claims["groups"] == "[billing admin]"


# ------------------------------------------------------------------------------ responses


def test_a_full_response_keeps_status_headers_and_cookies():
    resp = http_response(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "application/json", "X-Count": 3},
            "cookies": ["a=1; Path=/", "b=2"],
            "body": '{"ok":true}',
            "isBase64Encoded": False,
        }
    )
    assert resp.status == 201
    assert ("X-Count", "3") in resp.headers
    assert [v for k, v in resp.headers if k == "Set-Cookie"] == ["a=1; Path=/", "b=2"]
    assert resp.body == b'{"ok":true}'


def test_a_base64_response_body_is_decoded():
    raw = bytes(range(10))
    resp = http_response(
        {"statusCode": 200, "body": base64.b64encode(raw).decode(), "isBase64Encoded": True}
    )
    assert resp.body == raw


@pytest.mark.parametrize(
    ("result", "body"),
    [({"message": "hi"}, b'{"message": "hi"}'), ("plain", b'"plain"'), ([1, 2], b"[1, 2]")],
)
def test_a_result_without_status_code_is_a_200_json_body(result, body):
    resp = http_response(result)
    assert resp.status == 200
    assert ("Content-Type", "application/json") in resp.headers
    assert resp.body == body


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 200, "body": "%%%", "isBase64Encoded": True},
        {"statusCode": 200, "headers": ["x"]},
    ],
)
def test_malformed_responses_are_refused(result):
    with pytest.raises(MalformedResponse):
        http_response(result)


# ------------------------------------------------------------------------------------ SQS


def received(body="hello", n=1, **attrs):
    return {
        "MessageId": f"m-{n}",
        "ReceiptHandle": f"rh-{n}",
        "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "Body": body,
        "Attributes": {
            "SenderId": "AIDAEXAMPLE",
            "SentTimestamp": "1764000000000",
            "ApproximateReceiveCount": "1",
            "ApproximateFirstReceiveTimestamp": "1764000000100",
        },
        "MessageAttributes": attrs,
    }


def test_sqs_records_have_lambdas_shape():
    msg = received(
        "hi",
        trace={"StringValue": "t-1", "DataType": "String"},
        blob={"BinaryValue": b"\x00\x01", "DataType": "Binary"},
    )
    event = sqs_event([msg], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    record = event["Records"][0]
    assert record["messageId"] == "m-1"
    assert record["receiptHandle"] == "rh-1"
    assert record["body"] == "hi"
    assert record["md5OfBody"] == hashlib.md5(b"hi").hexdigest()
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == "arn:aws:sqs:us-east-1:123456789012:q"
    assert record["awsRegion"] == "us-east-1"
    assert record["messageAttributes"] == {
        "trace": {
            "stringValue": "t-1",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "blob": {
            "binaryValue": "AAE=",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    SqsModel.model_validate(event)


def test_batch_item_failures_follow_lambdas_rules():
    ids = {"a", "b"}
    assert failed_message_ids(None, ids) == set()
    assert failed_message_ids({}, ids) == set()
    assert failed_message_ids({"batchItemFailures": []}, ids) == set()
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "b"}]}, ids) == {"b"}
    # Anything Lambda cannot read fails the whole batch.
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": "zz"}]}, ids) is None
    assert failed_message_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, ids) is None
    assert failed_message_ids({"batchItemFailures": "b"}, ids) is None
    assert failed_message_ids("oops", ids) is None


def test_scheduled_events_look_like_eventbridges():
    event = scheduled_event(
        "arn:aws:events:us-east-1:123456789012:rule/r", "123456789012", "us-east-1", NOW
    )
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["time"] == "2025-11-24T16:00:00Z"
    assert event["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/r"]
    EventBridgeModel.model_validate(event)
    json.dumps(event)
