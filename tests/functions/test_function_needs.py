"""What tools/function_needs.py reads from the source (and so which secrets each Knative pod
gets) is what each handler really builds when the runtime imports it: a cold start with the
function's template environment, on DynamoDB Local and the test Redis."""

from __future__ import annotations

import sys

import pytest

from funcmart.bootstrap import _OVERRIDABLE, Container
from funcmart_hosts.gateway.loader import Handler
from funcmart_hosts.gateway.template import Template
from tools import function_needs


def built_at_cold_start(logical_id: str) -> set[str]:
    deps = sys.modules[f"funcmart_fn_{logical_id}"].deps
    assert isinstance(deps, Container)
    return {name for name in _OVERRIDABLE if deps.built(name) is not None}


def test_each_function_builds_what_its_source_says(
    tpl: Template, handlers: dict[str, Handler]
) -> None:
    assert set(handlers) == set(tpl.functions)
    for logical_id, fn in sorted(tpl.functions.items()):
        # aws_session: built by whichever AWS client comes first, never named in a source.
        read = set(function_needs.dependencies(tpl, fn)) - {"aws_session"}
        assert built_at_cold_start(logical_id) - {"aws_session"} == read, logical_id


def test_a_function_that_touches_no_redis_is_read_as_such(tpl: Template) -> None:
    # ListOrders builds only the orders repository; its rate limiter is what brings Redis.
    fn = tpl.functions["ListOrders"]
    assert "redis_client" in function_needs.dependencies(tpl, fn)
    assert function_needs.readied(fn) == {"orders"}
    assert "redis_client" not in function_needs.container_graph()["orders"].uses


@pytest.mark.usefixtures("handlers")  # every handler imported as the runtime imports it
def test_a_dependency_looked_up_on_first_use_still_gets_its_settings(tpl: Template) -> None:
    # FulfilOrder's cold start builds no product cache (nothing to invalidate when an order
    # ships), but an order function may change stock: its pod gets the Redis URL.
    fn = tpl.functions["FulfilOrder"]
    assert "cache" in function_needs.container_graph()["order_ports"].later
    assert "cache" not in built_at_cold_start("FulfilOrder")
    assert "cache" not in function_needs.dependencies(tpl, fn)
    assert "cache" in function_needs.dependencies(tpl, fn, later=True)
    assert function_needs.uses_redis(tpl, fn)


@pytest.mark.parametrize(
    ("name", "setting"), [("redis_url", "redis_url"), ("publisher", "event_signing_key")]
)
def test_the_graph_reads_settings_through_self_settings_and_its_alias(
    name: str, setting: str
) -> None:
    assert setting in function_needs.container_graph()[name].reads
    assert "redis_url" in function_needs.container_graph()["redis_client"].uses
