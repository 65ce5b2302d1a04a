"""docs/openapi.json is generated from the code: it must be current, and say what it should."""

from __future__ import annotations

import itertools
import json

import pytest

from funcmart_hosts import openapi
from funcmart_hosts.gateway import template


@pytest.fixture(scope="module")
def generated() -> dict:
    return openapi.build_document()


def test_the_committed_document_is_what_the_code_generates(generated) -> None:
    committed = openapi.DOCUMENT.read_text()
    assert committed == openapi.render(generated), "docs/openapi.json is stale: make openapi"


def test_the_openapi_validator_accepts_it(generated) -> None:
    from openapi_spec_validator import validate

    validate(generated)  # raises with the first rule of OpenAPI 3.1 the document breaks


def test_it_is_openapi_3_1_with_every_http_route(generated) -> None:
    assert generated["openapi"].startswith("3.1")
    routes = {
        (r.method.lower(), r.path) for fn in template.load().functions.values() for r in fn.routes
    }
    documented = {(m, p) for p, item in generated["paths"].items() for m in item}
    assert documented == routes


def test_routes_behind_the_authorizer_need_a_bearer_token(generated) -> None:
    tpl = template.load()
    for fn in tpl.functions.values():
        for r in fn.routes:
            op = generated["paths"][r.path][r.method.lower()]
            assert op["operationId"] == fn.logical_id
            if r.public:
                assert op["security"] == []
                assert "401" not in op["responses"]
            else:
                assert op["security"] == [{"bearerAuth": []}]
                assert "401" in op["responses"]


def test_every_error_is_problem_json(generated) -> None:
    responses = generated["components"]["responses"]
    for item in generated["paths"].values():
        for op in item.values():
            for status, response in op["responses"].items():
                if int(status) >= 400 and "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[-1]
                    assert "application/problem+json" in responses[name]["content"]
    assert json.dumps(generated).count("HTTPValidationError") == 0


def test_limited_routes_document_429_and_the_ratelimit_headers(generated) -> None:
    op = generated["paths"]["/cart"]["get"]
    assert "429" in op["responses"]
    assert set(op["responses"]["200"]["headers"]) >= {"RateLimit-Limit", "RateLimit-Remaining"}
    assert "429" not in generated["paths"]["/health"]["get"]["responses"]


def _operations(doc: dict) -> list[tuple[str, dict]]:
    return [(f"{m.upper()} {p}", op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_every_tag_and_summary_says_something_of_its_own() -> None:
    """In the committed document: no empty text, none the same as its neighbour's, and no
    Markdown in a summary (OpenAPI renders a summary as plain text)."""
    doc = json.loads(openapi.DOCUMENT.read_text())
    tags = [(t["name"], t.get("description", "")) for t in doc["tags"]]
    summaries = [(name, op.get("summary", "")) for name, op in _operations(doc)]
    for group in (tags, summaries):
        for name, text in group:
            assert text.strip(), f"{name}: empty"
            assert text.strip().rstrip(".").lower() != name.lower(), f"{name}: says only its name"
        for (a, ta), (b, tb) in itertools.pairwise(group):
            assert ta != tb, f"{a} and {b} say the same: {ta!r}"
    assert len({t for _, t in tags}) == len(tags)
    for name, summary in summaries:
        assert "`" not in summary, f"{name}: Markdown in a plain-text summary: {summary!r}"
    used = {t for _, op in _operations(doc) for t in op.get("tags", [])}
    assert used == {name for name, _ in tags}


def test_the_operations_tag_names_what_it_holds() -> None:
    doc = json.loads(openapi.DOCUMENT.read_text())
    (description,) = [t["description"] for t in doc["tags"] if t["name"] == "operations"]
    for subject in ("health", "orders", "dead letters"):
        assert subject in description.lower()


def test_cancel_says_which_orders_it_cancels() -> None:
    doc = json.loads(openapi.DOCUMENT.read_text())
    summary = doc["paths"]["/orders/{orderId}/cancel"]["post"]["summary"]
    for state in ("PENDING", "PAID", "NEEDS_ATTENTION"):
        assert state in summary
