"""Every events/ file is used by a function test, and every function has at least one."""

from __future__ import annotations

from funcmart_hosts.gateway.template import Template
from tests.functions import test_cart_functions, test_catalog_functions, test_order_functions
from tests.functions.invoking import EVENTS

CASES = {
    **test_catalog_functions.CASES,
    **test_order_functions.CASES,
    **test_cart_functions.CASES,
}


def test_every_event_file_has_a_case() -> None:
    files = {p.name for p in EVENTS.glob("*.json")}
    assert files - CASES.keys() == set(), "event files no test uses"
    assert CASES.keys() - files == set(), "cases without an event file"


def test_every_function_has_an_event(tpl: Template) -> None:
    covered = {case.function for case in CASES.values()}
    assert set(tpl.functions) - covered == set(), "functions without an event file"
    assert covered - set(tpl.functions) == set(), "cases naming no function of the template"
