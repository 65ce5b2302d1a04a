"""A synchronous test client for the hosts' ASGI apps, over httpx's ASGI transport: no socket,
the app's real code path from the ASGI scope on. Answers read like a requests/Flask response."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

import httpx


class Answer:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.data = response.content

    def get_json(self, force: bool = False) -> Any:  # noqa: ARG002 - Flask's signature
        return json.loads(self.data)


class AsgiClient:
    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.app = app
        self.client = client

    def open(
        self,
        path: str,
        method: str = "GET",
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        data: bytes | str | None = None,
    ) -> Answer:
        body = data.encode() if isinstance(data, str) else data
        pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
        return asyncio.run(self._send(method, path, pairs, body))

    async def _send(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes | None
    ) -> Answer:
        transport = httpx.ASGITransport(app=self.app, client=self.client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
            request = c.build_request(method, path, headers=raw, content=body)
            return Answer(await c.send(request))

    def get(self, path: str, **kw: Any) -> Answer:
        return self.open(path, "GET", **kw)

    def post(self, path: str, **kw: Any) -> Answer:
        return self.open(path, "POST", **kw)
