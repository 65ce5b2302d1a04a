"""The trace viewer in a real browser (Debian's Chromium, driven by Playwright) against the
local platform with its in-memory traces on, as `make dev` runs it: an order placed over HTTP
and fulfilled is found by its id and rendered as one trace's waterfall, with a row and a drawn
bar for each span of PlaceOrder, ProcessOrder and FulfilOrder.

Every wait is bounded in time.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from bench.common import wait_until
from funcmart_hosts.local.platform import LocalPlatform
from tests.e2e.test_console_in_browser import watch
from tests.e2e.test_order_pipeline import Shop
from tests.support.browser import chromium
from tests.support.platforms import local_settings

FUNCTIONS = ("PlaceOrder", "ProcessOrder", "FulfilOrder")


def test_an_orders_trace_opens_in_a_browser_as_one_waterfall_of_its_three_functions(
    make_table: Any, dynamodb_endpoint: str, moto_endpoint: str, redis_url: str
) -> None:
    settings = dataclasses.replace(
        local_settings(
            "trace-page",
            make_table(),
            dynamodb_endpoint,
            moto_endpoint,
            redis_url,
            RetryBackoffBaseSeconds="0",
        ),
        traces="memory",
    )
    with (
        LocalPlatform(settings, run_schedules=False, embedded=False) as platform,
        chromium() as browser,
    ):
        shop = Shop(platform)
        # GIVEN an order placed over HTTP and fulfilled
        oid = shop.order("trudy", shop.product(stock=2))
        wait_until(lambda: shop.status("trudy", oid) == "FULFILLED", 30, "order fulfilled")
        # (FulfilOrder's table write can land in the store just after the order reads FULFILLED)
        store = platform.traces
        assert store is not None

        def fulfilment_recorded() -> bool:
            found = store.for_order(oid)
            return bool(found) and any(
                s.function.endswith("FulfilOrder") and s.attributes.get("rpc.service") == "DynamoDB"
                for s in store.spans(found[0])
            )

        wait_until(fulfilment_recorded, 10, "FulfilOrder's spans recorded", every=0.1)
        page = browser.new_page()
        problems = watch(page)
        # WHEN the order's trace is opened by the order's id
        answer = page.goto(f"{platform.url}/traces?order={oid}")
        assert answer is not None
        assert answer.status == 200
        # THEN the browser followed the redirect to one trace, and the page says so
        match = re.fullmatch(rf"{re.escape(platform.url)}/traces/([0-9a-f]{{32}})", page.url)
        assert match, page.url
        trace_id = match.group(1)
        assert page.get_by_role("heading", level=1).inner_text() == f"Trace {trace_id}"
        rows = page.locator("tr.span")
        count = rows.count()
        summary = page.get_by_text(re.compile(r"^\d+ spans in [\d.]+ ms")).inner_text()
        assert summary.startswith(f"{count} spans in "), (summary, count)
        # AND one row per span of each function, each with its bar drawn
        shown = rows.evaluate_all(
            """rows => rows.map(r => {
                const bar = r.querySelector('.bar').getBoundingClientRect();
                return {
                    id: r.dataset.spanId,
                    name: r.cells[0].innerText.trim(),
                    fn: r.cells[1].innerText.trim(),
                    barWidth: bar.width,
                    visible: r.offsetParent !== null,
                };
            })"""
        )
        assert len({r["id"] for r in shown}) == count
        assert all(r["visible"] and r["barWidth"] > 0 for r in shown), shown
        functions = {f: [r for r in shown if r["fn"].endswith(f)] for f in FUNCTIONS}
        for function, spans in functions.items():
            assert spans, (function, shown)
        names = [r["name"] for r in shown]
        assert names[0] == "POST /orders"  # the request that placed it is the root
        assert any(r["name"].startswith("DynamoDB.") for r in shown), names
        assert any(r["name"].startswith("DynamoDB.") for r in functions["FulfilOrder"]), names
        assert "payment charge" in [r["name"] for r in functions["ProcessOrder"]]
        # and the JSON its link points to holds that trace only, the same spans
        href = page.get_by_role("link", name="JSON").get_attribute("href")
        assert href == f"/traces/{trace_id}.json"
        as_json = page.request.get(f"{platform.url}{href}")
        assert as_json.ok
        spans = as_json.json()["spans"]
        assert {s["traceId"] for s in spans} == {trace_id}
        assert {s["spanId"] for s in spans} == {r["id"] for r in shown}
        assert len(spans) == count
        assert not problems, problems
