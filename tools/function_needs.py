"""What each function reads at cold start, from its code: the settings its handler's
dependencies read, so that a Knative pod gets only the secrets its code uses.

A handler module names what it uses (`deps = build().ready("order_ports", "carts")`); an
HTTP function with a rate limit readies the rate limiter as well (`HttpFunction`). The
composition root (`funcmart/bootstrap.py`) builds each dependency from others
(`self.redis`) and from settings (`s.redis_url`). Both are read here from the source, not
by importing it: no environment, no client is needed to know that GetProduct reads
REDIS_URL and ListOrders does not sign events.

`tests/functions/test_function_needs.py` holds this reading to what each handler really
builds when it is imported with its template environment.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import Any, NamedTuple

from funcmart.domain.ratelimit import DEFAULT_LIMITS, parse_policy
from funcmart.settings import Settings
from funcmart_hosts.gateway.template import ROOT, Function, Template, _Tag

BOOTSTRAP = ROOT / "functions" / "funcmart" / "bootstrap.py"
CONTAINER = "Container"


# How bootstrap.Container declares a dependency (`lazily` is its thread-safe cached_property).
DEPENDENCY_DECORATORS = frozenset({"lazily", "cached_property"})


class Needs(NamedTuple):
    """What building one dependency of the Container takes."""

    uses: frozenset[str]  # other dependencies, built with it
    reads: frozenset[str]  # settings
    later: frozenset[str]  # other dependencies looked up when first used (inside a lambda)


@functools.cache
def container_graph(path: Path = BOOTSTRAP) -> dict[str, Needs]:
    """Each cached dependency of the Container and what it needs, from the source of its
    method."""
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == CONTAINER)
    methods = [
        n
        for n in cls.body
        if isinstance(n, ast.FunctionDef)
        and any(_decorator_name(d) in DEPENDENCY_DECORATORS for d in n.decorator_list)
    ]
    names = {m.name for m in methods}
    fields = set(Settings.names())
    graph: dict[str, Needs] = {}
    for method in methods:
        uses: set[str] = set()
        reads: set[str] = set()
        later: set[str] = set()
        deferred = {
            id(node)
            for lam in ast.walk(method)
            if isinstance(lam, ast.Lambda)
            for node in ast.walk(lam.body)
        }
        for node in ast.walk(method):
            if not isinstance(node, ast.Attribute):
                continue
            if _is_self(node.value) and node.attr in names and node.attr != method.name:
                (later if id(node) in deferred else uses).add(node.attr)
            elif node.attr in fields and _is_settings(node.value):
                reads.add(node.attr)
        graph[method.name] = Needs(frozenset(uses), frozenset(reads), frozenset(later - uses))
    return graph


def _decorator_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _is_settings(node: ast.expr) -> bool:
    """`s` (the methods' alias for self.settings) or `self.settings`."""
    if isinstance(node, ast.Name):
        return node.id == "s"
    return isinstance(node, ast.Attribute) and node.attr == "settings" and _is_self(node.value)


def readied(fn: Function, code: Path = ROOT) -> frozenset[str]:
    """The dependencies the handler module readies at module scope (`build().ready(...)`)."""
    path = code / fn.code_uri / (fn.module.replace(".", "/") + ".py")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "ready"
        ):
            out |= {a.value for a in node.args if isinstance(a, ast.Constant)}
    return frozenset(str(n) for n in out)


def _env_value(tpl: Template, value: Any) -> str | None:
    if isinstance(value, _Tag) and value.name == "Ref":
        spec = (tpl.raw.get("Parameters") or {}).get(str(value.value)) or {}
        default = spec.get("Default")
        return None if default is None else str(default)
    return None if value is None or isinstance(value, _Tag) else str(value)


def rate_limited(tpl: Template, fn: Function) -> bool:
    """Whether the HTTP function counts requests (then it readies the rate limiter), with
    the template's values (a parameter: its default), as `HttpFunction` decides it."""
    if not fn.routes:
        return False
    spec = _env_value(tpl, fn.environment.get("RATE_LIMIT"))
    route_class = _env_value(tpl, fn.environment.get("RATE_LIMIT_CLASS"))
    classes = [route_class] if route_class else ["reads", "writes"]
    return any(
        parse_policy(spec if spec is not None else DEFAULT_LIMITS[c]) is not None for c in classes
    )


def dependencies(tpl: Template, fn: Function, *, later: bool = False) -> frozenset[str]:
    """Every Container dependency the function builds at cold start; with `later`, also
    those it may build when first used."""
    graph = container_graph()
    todo = set(readied(fn))
    if rate_limited(tpl, fn):
        todo |= {"rate_limiter", "metrics"}
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if name not in graph:
            raise ValueError(f"{fn.logical_id}: readies {name!r}, which the Container lacks")
        seen.add(name)
        todo |= graph[name].uses | (graph[name].later if later else frozenset())
    return frozenset(seen)


def settings_read(tpl: Template, fn: Function) -> frozenset[str]:
    """The Settings fields the function's dependencies read when they are built, at cold
    start or on first use."""
    graph = container_graph()
    return frozenset(f for d in dependencies(tpl, fn, later=True) for f in graph[d].reads)


def uses_redis(tpl: Template, fn: Function) -> bool:
    return "redis_url" in settings_read(tpl, fn)


def publishes_events(tpl: Template, fn: Function) -> bool:
    """Whether the function builds a publisher (over a broker it signs with the event key)."""
    return "publisher" in dependencies(tpl, fn)


def verifies_tokens(fn: Function) -> bool:
    """Whether a host verifies bearer tokens for the function: it has a non-public route."""
    return any(not r.public for r in fn.routes)
