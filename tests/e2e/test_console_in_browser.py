"""The operator console in a real browser (Debian's Chromium, driven by Playwright) against
the local platform: DynamoDB Local, moto's SQS, Redis.

An operator signs in with the dev sign-in, finds an order the payment simulator dead-lettered,
cancels it with a note and sees the stock back and the action on its timeline, sees a 409
plainly, sets stock and sees it marked low, redrives dead letters; a customer is refused. With
FUNCMART_CONSOLE_SCREENSHOTS set (`make screenshots`) the main views are saved as pictures.

Every wait is bounded in time.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from typing import Any

import boto3
import httpx

from bench.common import wait_until
from funcmart_hosts.gateway.auth import mint_token
from funcmart_hosts.gateway.template import load
from funcmart_hosts.local.platform import LocalPlatform
from funcmart_hosts.local.resources import default_jwt_config
from tests.support.browser import chromium, screenshot
from tests.support.oidc import FakeIssuer
from tests.support.platforms import local_settings


def bearer(platform: LocalPlatform, sub: str, admin: bool = False) -> dict[str, str]:
    config = default_jwt_config(load(platform.settings.template_path), platform.settings)
    token = mint_token(platform.settings.jwt_secret, config, sub, ["admin"] if admin else [])
    return {"Authorization": f"Bearer {token}"}


def watch(page: Any) -> list[str]:
    """What the page reports as broken: script errors and refused loads (a CSP violation)."""
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: problems.append(f"console: {msg.text}") if msg.type == "error" else None,
    )
    return problems


def sign_in(page: Any, base: str, role: str, sub: str) -> None:
    """The dev sign-in, with the keyboard only."""
    page.goto(f"{base}/console/")
    page.get_by_label("Role").select_option(role)  # focused on load
    page.get_by_label("Subject").fill(sub)
    page.get_by_label("Subject").press("Enter")


def stuck_orders(http: httpx.Client, platform: LocalPlatform) -> tuple[str, list[str]]:
    """A product with 8 in stock and two orders of it (2, then 1) whose payment fails on
    every delivery, both dead-lettered and flagged NEEDS_ATTENTION."""
    admin = bearer(platform, "setup-admin", admin=True)
    made = http.post(
        "/products",
        headers=admin,
        json={
            "name": "Lantern",
            "category": "console",
            "price": {"amount": 900, "currency": "EUR"},
            "stock": 8,
        },
    )
    pid = made.json()["id"]
    oids = []
    for quantity in (2, 1):
        placed = http.post(
            "/orders",
            headers={**bearer(platform, "erin"), "Idempotency-Key": uuid.uuid4().hex},
            json={
                "lines": [{"productId": pid, "quantity": quantity}],
                "paymentToken": "tok_transient",
            },
        )
        oids.append(placed.json()["id"])

    def waiting() -> bool:
        listed = http.get("/operations/orders", headers=admin).json()["items"]
        return set(oids) <= {o["id"] for o in listed}

    wait_until(waiting, 60, "the orders to be dead-lettered and flagged", every=0.25)
    return pid, oids


def test_an_operator_finds_a_stuck_order_cancels_it_and_a_customer_is_refused(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    settings = local_settings(
        "console",
        make_table(),
        dynamodb_endpoint,
        moto_endpoint,
        redis_url,
        RetryBackoffBaseSeconds="0",
        MaxReceiveCount="2",
        # retries take no time here: a dead letter may come as soon as the order is placed
        DeadLetterMinAgeSeconds="0",
        OrdersRateLimit="off",
    )
    with (
        LocalPlatform(settings) as platform,
        httpx.Client(base_url=platform.url, timeout=30) as http,
        chromium() as browser,
    ):
        pid, (oid, other) = stuck_orders(http, platform)
        page = browser.new_page()
        problems = watch(page)
        # GIVEN an operator signed in
        answer = page.goto(f"{platform.url}/console")
        assert answer is not None
        assert "script-src 'self'" in answer.headers["content-security-policy"]
        sign_in(page, platform.url, "admin", "console-admin")
        # WHEN the orders needing attention show, the stuck one is there with why and how much
        row = page.locator("tr", has=page.get_by_role("link", name=oid))
        row.wait_for()
        assert "NEEDS ATTENTION" in row.inner_text()
        assert "dead-lettered" in row.inner_text()
        assert "18.00" in row.inner_text()
        summary = page.locator("[data-state=NEEDS_ATTENTION]")
        summary.wait_for()
        assert int(summary.inner_text().rstrip("+")) >= 2
        page.get_by_text("Updated").wait_for()
        screenshot(page, "orders")
        # AND the operator opens it: flagged, its stock reserved
        page.get_by_role("link", name=oid).click()
        page.locator("#order-state", has_text="NEEDS ATTENTION").wait_for()
        assert "Flagged NEEDS ATTENTION from PENDING" in page.locator(".timeline").inner_text()
        assert page.locator(f"#lines td[data-product='{pid}']").inner_text() == "5"
        # a note is required before anything is sent
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text("Write a note first").wait_for()
        # WHEN they cancel it with a note and confirm
        page.get_by_label("Note").fill("customer asked by phone; card keeps failing")
        page.get_by_role("button", name="Cancel").click()
        dialog = page.get_by_role("dialog")
        assert "Cancel order" in dialog.inner_text()
        dialog.get_by_role("button", name="Confirm").click()
        # THEN the answer shows, the order is cancelled, the stock is back, the note on the timeline
        page.locator("#action-result", has_text="200 OK").wait_for()
        page.locator("#order-state", has_text="CANCELLED").wait_for()
        timeline = page.locator(".timeline").inner_text()
        assert "cancel by console-admin: now CANCELLED" in timeline
        assert "customer asked by phone; card keeps failing" in timeline
        assert page.locator(f"#lines td[data-product='{pid}']").inner_text() == "7"
        # The payment never succeeded: the API's order records no charge and so no refund;
        # the page says it shows none.
        order = http.get(f"/orders/{oid}", headers=bearer(platform, "auditor", admin=True)).json()
        assert order["status"] == "CANCELLED"
        assert not {"payment", "refund", "refunds"} & set(order)
        assert (
            "no payment, refund or shipment record" in page.locator("#timeline-note").inner_text()
        )
        screenshot(page, "order")
        # AND acting again on a settled order shows the API's 409 plainly
        page.get_by_label("Note").fill("retry by mistake")
        page.get_by_role("button", name="Retry").click()
        page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
        refused = page.locator("#action-result [role=alert]")
        refused.wait_for()
        assert re.search(
            r"^409 Conflict: .*only an order that needs attention", refused.inner_text()
        )
        # Stock: set below the threshold, marked low, the API agrees
        page.get_by_role("link", name="Products").click()
        assert page.locator(f"tr[data-product='{pid}'] td.stock").inner_text() == "7"
        assert page.locator(f"tr.low[data-product='{pid}']").count() == 0
        page.get_by_label("New stock for Lantern").fill("2")
        page.get_by_label("New stock for Lantern").press("Enter")
        product_row = page.locator(f"tr[data-product='{pid}']")
        page.locator(f"tr.low[data-product='{pid}']").wait_for()
        assert re.match(r"2\s+low", product_row.locator("td.stock").inner_text())
        assert http.get(f"/products/{pid}").json()["stock"] == 2
        screenshot(page, "products")
        # At 390 pixels wide the orders read as cards, nothing wider than the screen
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("link", name="Orders").click()
        page.get_by_label("Filter by state").select_option("PENDING")
        page.get_by_text("No order is PENDING").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.get_by_label("Filter by state").select_option("NEEDS_ATTENTION")
        page.get_by_role("link", name=other).wait_for()
        assert page.get_by_role("link", name=oid).count() == 0  # settled: no longer listed
        page.get_by_text("Updated").wait_for()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        screenshot(page, "orders-390")
        page.set_viewport_size({"width": 1280, "height": 800})
        # WHEN a customer signs in THEN they are refused, with no way into operations
        page.get_by_role("button", name="Sign out").click()
        page.get_by_label("Role").select_option("customer")
        page.get_by_label("Subject").fill("erin")
        page.get_by_role("button", name="Sign in").click()
        refusal = page.locator("#refusal")
        refusal.wait_for()
        assert "erin is not an operator" in refusal.inner_text()
        assert "403" in refusal.inner_text()
        assert page.locator("#nav").is_hidden()
        screenshot(page, "refused")
        # The token was kept in memory only
        stored = page.evaluate("JSON.stringify([localStorage.length, sessionStorage.length])")
        assert stored == "[0,0]"
        assert "token" not in page.url
        # the 409 and the 403 above are the API's answers, which Chromium logs as failed loads
        expected = ("status of 409", "status of 403")
        assert not [p for p in problems if not any(e in p for e in expected)], problems


def test_an_operator_redrives_dead_letters_and_sees_each_queue_moved(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    settings = local_settings(
        "console-dl", make_table(), dynamodb_endpoint, moto_endpoint, redis_url
    )
    # no consumers: the dead letters stay where they are until redriven
    with (
        LocalPlatform(settings, poll_queues=False, run_schedules=False) as platform,
        chromium() as browser,
    ):
        assert platform.deployment is not None
        urls = {lid: q.url for lid, q in platform.deployment.queues.items()}
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
        for oid in ("d1", "d2"):
            body = json.dumps({"type": "OrderPlaced", "orderId": oid})
            sqs.send_message(QueueUrl=urls["OrderPlacedDeadLetterQueue"], MessageBody=body)
        page = browser.new_page()
        problems = watch(page)
        sign_in(page, platform.url, "admin", "console-admin")
        page.get_by_role("link", name="Dead letters").click()
        # WHEN the operator redrives and confirms, with the keyboard
        page.get_by_role("button", name="Redrive dead letters").focus()
        page.keyboard.press("Enter")
        confirm = page.get_by_role("dialog").get_by_role("button", name="Confirm")
        confirm.wait_for()
        assert confirm.evaluate("b => b === document.activeElement")
        page.keyboard.press("Enter")
        # THEN each queue's count shows, and the messages are back in their source queue
        moved = page.locator("td[data-queue$='OrderPlacedDeadLetterQueue']")
        moved.wait_for()
        assert moved.inner_text() == "2"
        assert "2 messages moved" in page.locator("#redrive-result").inner_text()
        screenshot(page, "dead-letters")
        attrs = sqs.get_queue_attributes(
            QueueUrl=urls["OrderPlacedQueue"], AttributeNames=["ApproximateNumberOfMessages"]
        )
        assert attrs["Attributes"]["ApproximateNumberOfMessages"] == "2"
        assert not problems, problems


def test_where_the_gateway_trusts_an_identity_provider_the_console_signs_in_there_with_pkce(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    with FakeIssuer(audience="funcmart", client_id="funcmart-console") as idp:
        settings = dataclasses.replace(
            local_settings(
                "console-oidc",
                make_table(),
                dynamodb_endpoint,
                moto_endpoint,
                redis_url,
                JwtIssuer=idp.issuer,
            ),
            jwks_url=f"{idp.issuer}/jwks",
            console_client_id="funcmart-console",
        )
        with (
            LocalPlatform(settings, poll_queues=False, run_schedules=False) as platform,
            chromium() as browser,
        ):
            page = browser.new_page()
            problems = watch(page)
            page.goto(f"{platform.url}/console/")
            # no dev sign-in here, and the platform gives no dev token
            assert page.get_by_label("Role").count() == 0
            refused = page.request.post(
                f"{platform.url}/console/dev-token",
                data=json.dumps({"role": "admin"}),
                headers={"Content-Type": "application/json"},
            )
            assert refused.status == 404
            # WHEN the operator signs in at the issuer
            page.get_by_role("button", name="Sign in").click()
            # THEN the code comes back, is exchanged with the PKCE verifier, and leaves the address
            page.get_by_role("heading", name="Orders waiting").wait_for()
            assert page.get_by_text("Signed in as").inner_text() == "Signed in as oidc-admin"
            assert idp.exchanged == ["oidc-admin"]
            assert "code=" not in page.url
            assert "state=" not in page.url
            stored = page.evaluate("JSON.stringify([localStorage.length, sessionStorage.length])")
            assert stored == "[0,0]"
            # AND someone outside the admin group, signed in there too, is refused
            idp.subject, idp.groups = "oidc-customer", []
            page.get_by_role("button", name="Sign out").click()
            page.get_by_role("button", name="Sign in").click()
            page.locator("#refusal").wait_for()
            assert "oidc-customer is not an operator" in page.locator("#refusal").inner_text()
            expected = ("status of 403",)
            assert not [p for p in problems if not any(e in p for e in expected)], problems
