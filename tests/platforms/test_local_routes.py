"""Requests reach the function API Gateway would pick."""

import pytest

from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.gateway.template import HttpRoute, route_table


def table(*specs):
    return RouteTable(Route(fn, HttpRoute(m, p, public=True)) for fn, m, p in specs)


ROUTES = table(
    ("List", "GET", "/products"),
    ("Get", "GET", "/products/{productId}"),
    ("Stock", "PUT", "/products/{productId}/stock"),
    ("Featured", "GET", "/products/featured"),
    ("Files", "GET", "/files/{path+}"),
    ("Any", "ANY", "/anything/{id}"),
    ("Fallback", "ANY", "$default"),
)


def routed(method, path):
    found = ROUTES.match(method, path)
    assert found is not None
    return found[0].function, found[1]


def test_parameters_are_captured():
    assert routed("GET", "/products/p-1") == ("Get", {"productId": "p-1"})
    assert routed("PUT", "/products/p-1/stock") == ("Stock", {"productId": "p-1"})


def test_a_literal_segment_beats_a_parameter():
    assert routed("GET", "/products/featured") == ("Featured", {})


def test_a_greedy_parameter_takes_the_rest_of_the_path():
    assert routed("GET", "/files/a/b/c.txt") == ("Files", {"path": "a/b/c.txt"})


def test_any_matches_every_method():
    assert routed("DELETE", "/anything/7") == ("Any", {"id": "7"})


def test_unmatched_requests_fall_to_default():
    assert routed("POST", "/products/p-1/stock") == ("Fallback", {})
    assert routed("GET", "/files") == ("Fallback", {})


def test_no_default_means_no_route():
    routes = table(("List", "GET", "/products"), ("Get", "GET", "/products/{productId}"))
    assert routes.match("GET", "/nope") is None
    assert routes.match("POST", "/products") is None
    assert routes.match("GET", "/products/a/b") is None
    assert routes.match("GET", "/products/") is None
    assert routes.match("GET", "/products//") is None


def test_the_same_route_twice_is_an_error():
    with pytest.raises(ValueError, match="GET /products"):
        table(("A", "GET", "/products"), ("B", "GET", "/products"))


def test_routes_come_from_the_template():
    tpl = template.load()
    routes = route_table(tpl)
    keys = {r.route_key: (r.function, r.spec.public) for r in routes}
    assert keys["GET /products"] == ("ListProducts", True)
    assert keys["POST /products"] == ("CreateProduct", False)
    assert routes.match("GET", "/products/abc")[0].function == "GetProduct"
    assert routes.match("PUT", "/products/abc/stock")[0].function == "SetStock"
