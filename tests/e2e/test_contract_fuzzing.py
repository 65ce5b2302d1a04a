"""Contract fuzzing: schemathesis generates requests for every operation of docs/openapi.json
and sends them to the local platform (DynamoDB Local, the real Redis), as an admin, as a
customer and with an invalid token. Every answer must be below 500 and conform to the
document: a documented status, its content type, its schema and its headers.

Generated data mostly names ids that do not exist, so each operation is also fuzzed with the
ids of a real product and order in its path. Rate limits are off here (they would answer
most cases with 429); tests/e2e/test_api_hardening.py covers them. FUNCMART_FUZZ_EXAMPLES
sets the examples per operation, mode and caller (default 12).
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import checks
from schemathesis.generation import GenerationMode

from funcmart_hosts import openapi
from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support import report
from tests.support.platforms import local_settings

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]
EXAMPLES = int(os.environ.get("FUNCMART_FUZZ_EXAMPLES", "12"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
LIMITS_OFF = {"ReadsRateLimit": "off", "WritesRateLimit": "off", "OrdersRateLimit": "off"}


@pytest.fixture(scope="module")
def platform(make_table, dynamodb_endpoint, moto_endpoint, redis_url) -> Iterator[LocalPlatform]:
    settings = local_settings(
        "fuzz", make_table(), dynamodb_endpoint, moto_endpoint, redis_url, **LIMITS_OFF
    )
    with LocalPlatform(settings) as running:
        yield running


def test_every_operation_survives_generated_requests(platform: LocalPlatform) -> None:
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)
    secret = platform.settings.jwt_secret
    customer = f"fuzz-{uuid.uuid4().hex[:6]}"
    callers = {
        "admin": f"Bearer {mint_token(secret, config, 'fuzz-admin', ['admin'])}",
        "customer": f"Bearer {mint_token(secret, config, customer)}",
        "invalid": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.bm90LXRoZS1zaWduYXR1cmU",
    }
    known = _seed(platform.url, callers)
    schema = schemathesis.openapi.from_dict(openapi.build_document())
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    started = time.monotonic()
    with requests.Session() as session:
        for result in schema.get_all_operations():
            op = result.ok()
            for mode, who, path_ids in _plan(op, known):
                examples = EXAMPLES if who != "invalid" else max(2, EXAMPLES // 4)
                authorization = callers[who]
                _fuzz(
                    op,
                    mode,
                    path_ids,
                    authorization,
                    examples,
                    platform.url,
                    session,
                    statuses,
                    failures,
                )
    cases = sum(statuses.values())
    seconds = time.monotonic() - started
    report.add(
        "schemathesis",
        f"{cases} generated cases over {len(list(schema.get_all_operations()))} operations "
        f"in {seconds:.0f}s, statuses {dict(sorted(statuses.items()))}",
    )
    print(f"schemathesis: {cases} generated cases, statuses {dict(sorted(statuses.items()))}")
    assert cases > 0
    assert not failures, "\n\n".join(failures[:10])
    assert not [s for s in statuses if s >= 500]


def _seed(base: str, callers: dict[str, str]) -> dict[str, str]:
    """A product and an order of the customer's, so that some cases name real ids."""
    with httpx.Client(base_url=base, timeout=10) as api:
        product = api.post(
            "/products",
            json={
                "name": "Fuzzed",
                "category": "books",
                "price": {"amount": 100, "currency": "EUR"},
                "stock": 1000,
            },
            headers={"Authorization": callers["admin"]},
        ).json()["id"]
        order = api.post(
            "/orders",
            json={"lines": [{"productId": product, "quantity": 1}], "paymentToken": "tok_ok"},
            headers={"Authorization": callers["customer"], "Idempotency-Key": uuid.uuid4().hex},
        ).json()["id"]
    return {"productId": product, "orderId": order}


def _plan(
    op: Any, known: dict[str, str]
) -> list[tuple[GenerationMode, str, dict[str, str] | None]]:
    names = {p.name for p in op.path_parameters}
    real = {n: known[n] for n in names if n in known} or None
    plan: list[tuple[GenerationMode, str, dict[str, str] | None]] = []
    for who in ("admin", "customer"):
        plan.append((GenerationMode.POSITIVE, who, None))
        plan.append((GenerationMode.NEGATIVE, who, None))
        if real:
            plan.append((GenerationMode.POSITIVE, who, real))
    plan.append((GenerationMode.POSITIVE, "invalid", None))
    return plan


def _fuzz(
    op: Any,
    mode: GenerationMode,
    path_ids: dict[str, str] | None,
    authorization: str,
    examples: int,
    base_url: str,
    session: requests.Session,
    statuses: collections.Counter[int],
    failures: list[str],
) -> None:
    headers = {"Authorization": authorization}
    strategy = op.as_strategy(generation_mode=mode, path_parameters=path_ids)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        # The caller's token, not one generated from the security scheme.
        kept = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
        case.headers = {**kept, **headers}
        response = case.call(base_url=base_url, session=session, timeout=15)
        statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except Exception as exc:  # collect every failure; judged once at the end
            failures.append(f"{op.method.upper()} {op.path} [{mode.value}]: {exc}")

    # Unsatisfiable: e.g. no negative variant of an operation without parameters or body.
    with contextlib.suppress(Unsatisfiable):
        run()
