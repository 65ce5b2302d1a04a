"""The HTTP API's routes: which route, and so which function, a request takes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(frozen=True)
class HttpRoute:
    method: str  # upper case; ANY matches every method
    path: str  # "/products/{productId}", "/{proxy+}" or "$default"
    public: bool
    authorizer: str | None = None  # name in the HttpApi's Auth.Authorizers; None when public
    scopes: tuple[str, ...] = ()  # AuthorizationScopes: the token needs one of them

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


_LITERAL, _PARAM, _GREEDY = 0, 1, 2


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the function behind the route
    spec: HttpRoute
    # The path's segments with their kinds, split once (matched on every request).
    _pattern: tuple[tuple[int, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", tuple((_kind(s), s) for s in self.segments))

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def path(self) -> str:
        return self.spec.path

    @property
    def route_key(self) -> str:
        return self.spec.route_key

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path.strip("/") else []

    def rank(self) -> tuple[tuple[int, ...], int]:
        """Sort key: smaller is more specific."""
        if self.path == "$default":
            return (_GREEDY + 1,), 1
        kinds = tuple(_kind(s) for s in self.segments)
        return kinds, 1 if self.method == "ANY" else 0

    def match(self, method: str, raw_path: str) -> dict[str, str] | None:
        """Path parameters (still percent-encoded) when the route matches, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        if self.path == "$default":
            return {}
        # Only the leading slash goes: "/products/" is not "/products" (as on HTTP APIs).
        stripped = raw_path.removeprefix("/")
        parts = stripped.split("/") if stripped else []
        params: dict[str, str] = {}
        for i, (kind, seg) in enumerate(self._pattern):
            if kind == _GREEDY:
                rest = parts[i:]
                if not rest or not all(rest):
                    return None
                params[seg[1:-2]] = "/".join(rest)
                return params
            if i >= len(parts) or not parts[i]:
                return None
            if kind == _PARAM:
                params[seg[1:-1]] = parts[i]
            elif unquote(parts[i]) != seg:
                return None
        return params if len(parts) == len(self._pattern) else None


def _kind(segment: str) -> int:
    if segment.startswith("{") and segment.endswith("+}"):
        return _GREEDY
    if segment.startswith("{") and segment.endswith("}"):
        return _PARAM
    return _LITERAL


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = sorted(routes, key=lambda r: (r.rank(), r.path, r.method))
        seen: dict[str, str] = {}
        for r in self.routes:
            if r.route_key in seen:
                raise ValueError(
                    f"route {r.route_key} is defined by both {seen[r.route_key]} and {r.function}"
                )
            seen[r.route_key] = r.function

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for the request, with its path parameters."""
        for route in self.routes:  # sorted most specific first
            params = route.match(method, raw_path)
            if params is not None:
                return route, params
        return None

    def methods_at(self, raw_path: str) -> list[str]:
        """The methods routes take at this path (none when an ANY route takes it)."""
        methods = {r.method for r in self.routes if r.match(r.method, raw_path) is not None}
        return [] if "ANY" in methods else sorted(methods)

    def __iter__(self) -> Iterator[Route]:
        return iter(self.routes)

    def __len__(self) -> int:
        return len(self.routes)
