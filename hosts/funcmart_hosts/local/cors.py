"""CORS as an HTTP API with a CorsConfiguration applies it, from the same template section.

API Gateway answers every preflight (OPTIONS with Origin and Access-Control-Request-Method)
itself, whether or not a route matches, and adds the Access-Control-* headers to the answers
of allowed origins; the functions never see either. The local gateway does the same, so a
browser app behaves alike against `make dev` and the deployed API.
"""

from __future__ import annotations

from dataclasses import dataclass

from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.responses import HttpResponse


@dataclass(frozen=True)
class CorsConfig:
    allow_origins: tuple[str, ...]
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None
    allow_credentials: bool = False

    def allowed_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for `origin`, or None when not allowed."""
        if not origin:
            return None
        if "*" in self.allow_origins and not self.allow_credentials:
            return "*"
        lowered = {o.lower().rstrip("/") for o in self.allow_origins}
        return origin if origin.lower().rstrip("/") in lowered else None

    def is_preflight(self, request: HttpRequest) -> bool:
        return (
            request.method == "OPTIONS"
            and request.header("origin") is not None
            and request.header("access-control-request-method") is not None
        )

    def preflight(self, request: HttpRequest) -> HttpResponse:
        """204, with the Access-Control-Allow-* headers when origin, method and headers are
        all allowed (a browser treats their absence as a refusal)."""
        headers: list[tuple[str, str]] = []
        origin = self.allowed_origin(request.header("origin"))
        method = (request.header("access-control-request-method") or "").strip().upper()
        wanted = [
            h.strip().lower()
            for h in (request.header("access-control-request-headers") or "").split(",")
            if h.strip()
        ]
        methods = set(self.allow_methods)
        allowed_headers = {h.lower() for h in self.allow_headers}
        if (
            origin is not None
            and ("*" in methods or method in methods)
            and ("*" in allowed_headers or all(h in allowed_headers for h in wanted))
        ):
            headers += self._origin_headers(origin)
            headers.append(("Access-Control-Allow-Methods", ",".join(self.allow_methods)))
            if self.allow_headers:
                headers.append(("Access-Control-Allow-Headers", ",".join(self.allow_headers)))
            if self.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return HttpResponse(204, headers, b"")

    def decorate(self, request: HttpRequest, response: HttpResponse) -> None:
        """Add the CORS headers to an answer for an allowed origin; replace the function's."""
        response.headers = [
            (k, v) for k, v in response.headers if not k.lower().startswith("access-control-")
        ]
        origin = self.allowed_origin(request.header("origin"))
        if origin is None:
            return
        response.headers += self._origin_headers(origin)
        response.checked = False  # the origin is the request's: checked again when written
        if self.expose_headers:
            response.headers.append(
                ("Access-Control-Expose-Headers", ",".join(self.expose_headers))
            )

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        out = [("Access-Control-Allow-Origin", origin)]
        if origin != "*":
            out.append(("Vary", "Origin"))
        if self.allow_credentials:
            out.append(("Access-Control-Allow-Credentials", "true"))
        return out
