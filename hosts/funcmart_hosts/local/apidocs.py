"""The API's own documentation on the local gateway: /openapi.json and a Swagger UI at /docs.

The document is docs/openapi.json (what `make openapi` generates from the code). The Swagger
UI's files come from the PyPI package swagger-ui-py (its static folder), never from a CDN, so
the page works offline.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path

from funcmart_hosts.gateway.events import HttpRequest
from funcmart_hosts.gateway.responses import HttpResponse
from funcmart_hosts.gateway.template import ROOT

OPENAPI_PATH = ROOT / "docs" / "openapi.json"
_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png")
_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>funcmart API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({
      url: "/openapi.json",
      dom_id: "#swagger-ui",
      deepLinking: true,
      persistAuthorization: true
    });
  </script>
</body>
</html>
"""


class ApiDocs:
    """Answers GET /openapi.json, /docs and /docs/<asset>; None for every other request."""

    def __init__(self, document: Path = OPENAPI_PATH) -> None:
        self.document = document

    def serve(self, request: HttpRequest) -> HttpResponse | None:
        if request.method not in ("GET", "HEAD"):
            return None
        path = request.raw_path
        if path == "/openapi.json":
            return self._file_response(self.document.read_bytes(), "application/json")
        if path in ("/docs", "/docs/"):
            return self._file_response(_PAGE.encode(), "text/html; charset=utf-8")
        name = path.removeprefix("/docs/")
        if path.startswith("/docs/") and name in _ASSETS:
            data = resources.files("swagger_ui").joinpath("static", name).read_bytes()
            kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return self._file_response(data, kind)
        return None

    @staticmethod
    def _file_response(body: bytes, content_type: str) -> HttpResponse:
        return HttpResponse(200, [("Content-Type", content_type)], body)
