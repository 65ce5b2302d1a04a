"""A store's fault (unreachable, throttled, an internal error) answers 503 problem+json with
Retry-After wherever it is raised, never 500: the mapping lives once in the function package,
so every platform answers the same. A request the store refused as malformed stays a 500
(our bug, logged), not a retry."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from pynamodb.exceptions import PutError, TransactWriteError

from funcmart.adapters.dynamodb.errors import is_store_fault, translate_errors
from funcmart.domain.errors import DependencyUnavailable
from tests.support.events import http_event
from tests.unit.test_malformed_inputs import make_app

BODY = json.dumps({"name": "Mug", "category": "kitchen", "price": {"amount": 1, "currency": "EUR"}})


def client_error(code: str, status: int, operation: str = "TransactWriteItems") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": "dictionary changed size during iteration"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


STORE_FAULTS = [
    client_error("InternalFailure", 500),
    client_error("InternalServerError", 500),
    client_error("500", 500),
    client_error("ThrottlingException", 400),
    client_error("ProvisionedThroughputExceededException", 400),
    client_error("ServiceUnavailable", 503),
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1"),
    TransactWriteError(
        "Failed to write transaction items", cause=client_error("InternalFailure", 500)
    ),
    PutError("Failed to put item", cause=client_error("ThrottlingException", 400)),
]


@pytest.mark.parametrize("fault", STORE_FAULTS, ids=lambda e: type(e).__name__ + ":" + str(e)[:40])
def test_a_store_fault_answers_503_with_retry_after(fault: Exception) -> None:
    # GIVEN a function whose store fails with `fault` outside any adapter's translation
    app = make_app(fail_with=fault)
    # WHEN it is called
    answer = app.handler(http_event("POST", "/products", body=BODY), None)
    # THEN the caller is told to retry, in problem+json, and learns nothing of the store
    assert answer["statusCode"] == 503
    assert answer["headers"]["Content-Type"] == "application/problem+json"
    assert int(answer["headers"]["Retry-After"]) >= 1
    assert "dictionary" not in answer["body"]
    assert is_store_fault(fault)


def test_a_request_the_store_refuses_is_not_a_store_fault() -> None:
    refused = client_error("ValidationException", 400)
    assert not is_store_fault(refused)
    answer = make_app(fail_with=refused).handler(http_event("POST", "/products", body=BODY), None)
    assert answer["statusCode"] == 500


def test_the_adapters_translate_an_internal_error_into_dependency_unavailable() -> None:
    @translate_errors
    def write() -> None:
        raise client_error("InternalFailure", 500)

    with pytest.raises(DependencyUnavailable):
        write()
