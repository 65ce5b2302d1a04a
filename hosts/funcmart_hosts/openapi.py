"""One OpenAPI 3.1 document for the whole API, generated from the code.

Each HTTP function's resolver describes its own route (Powertools' OpenAPI support: the
parameters, body and response models of the handler). This module loads every HTTP function
that template.yaml declares, exactly as the runtime would, asks each for its schema, merges
them with Powertools' `OpenAPIMerge`, and adds what the functions do not know about
themselves: which routes need a token (the template's authorizer), the problem+json errors
the platform answers with, the rate-limit headers, and operation names from the template.

    python -m funcmart_hosts.openapi            # print it
    python -m funcmart_hosts.openapi --write    # docs/openapi.json (make openapi)
    python -m funcmart_hosts.openapi --check    # exit 1 when docs/openapi.json is stale
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import sys
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

from funcmart import __version__
from funcmart.entrypoints.http import HttpFunction
from funcmart.problems import PROBLEM_JSON
from funcmart_hosts.gateway import template
from funcmart_hosts.gateway.loader import load_handler
from funcmart_hosts.gateway.template import ROOT, Function, Template

DOCUMENT = ROOT / "docs" / "openapi.json"
TITLE = "funcmart"
DESCRIPTION = (
    "An e-commerce backend in which every endpoint is its own function. Errors are "
    "`application/problem+json` (RFC 9457). Every answer of a rate-limited route carries "
    "`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`; a "
    "refused request is a 429 with `Retry-After`. See docs/api.md."
)
BEARER = "bearerAuth"

_TITLES = {
    400: "Invalid request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Idempotency key reused with a different request",
    429: "Too many requests",
    500: "Internal error",
    503: "Service temporarily unavailable",
}
_WHEN = {
    400: (
        "The request is malformed (not UTF-8, not JSON, a key named twice) or breaks a "
        "rule; `errors` lists the fields."
    ),
    401: "No bearer token, or one that is invalid, expired, or for another audience or issuer.",
    403: "The caller may not do this (catalog writes need the admin group).",
    404: "No such resource, or one the caller may not see.",
    409: "The resource's state does not allow it (version, stock, empty or full cart).",
    413: "The body is larger than the function accepts (MAX_BODY_BYTES).",
    415: "The body is not JSON: send application/json or application/*+json, in UTF-8.",
    422: "The Idempotency-Key was used before for a different request.",
    429: "The caller's budget for this route class is spent; see Retry-After.",
    500: "An unexpected error; it has been logged with the request id.",
    503: "A dependency (DynamoDB, or Redis for carts) is unavailable; see Retry-After.",
}
_RATE_HEADERS = {
    "RateLimit-Limit": "Requests allowed per period for this route class.",
    "RateLimit-Remaining": "Requests left before the caller is refused.",
    "RateLimit-Reset": "Seconds until the whole budget is available again.",
    "RateLimit-Policy": "The policy, as `<limit>;w=<period seconds>`.",
}


def _problem_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "title": "Problem",
        "description": "An RFC 9457 problem detail.",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string", "examples": ["urn:funcmart:problem:not-found"]},
            "title": {"type": "string", "examples": ["Not found"]},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "requestId": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
        "additionalProperties": True,
    }


def _components() -> dict[str, Any]:
    headers: dict[str, Any] = {
        name: {"description": text, "schema": {"type": "integer", "minimum": 0}}
        for name, text in _RATE_HEADERS.items()
    }
    headers["RateLimit-Policy"]["schema"] = {"type": "string", "examples": ["60;w=60"]}
    headers["Retry-After"] = {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    }
    responses = {}
    for status, title in _TITLES.items():
        response: dict[str, Any] = {
            "description": _WHEN[status],
            "content": {
                PROBLEM_JSON: {
                    "schema": {"$ref": "#/components/schemas/Problem"},
                    "example": {
                        "type": f"urn:funcmart:problem:{'-'.join(title.lower().split())}",
                        "title": title,
                        "status": status,
                        "detail": _WHEN[status],
                        "requestId": "Cm9a05xYzIAMEb-Q=",
                    },
                }
            },
        }
        if status in (429, 503):
            response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
        responses[f"Problem{status}"] = response
    return {
        "schemas": {"Problem": _problem_schema()},
        "responses": responses,
        "headers": headers,
        "securitySchemes": {
            BEARER: {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "A JWT from the API's issuer; locally `make token`.",
            }
        },
    }


def _is_powertools_default(response: dict[str, Any]) -> bool:
    """Powertools' own 422/500 validation responses: ours are 400 and 500 problems."""
    refs = json.dumps(response)
    return "HTTPValidationError" in refs or "ResponseValidationError" in refs


def _tag(path: str) -> str:
    return {"products": "catalog", "cart": "cart", "orders": "orders"}.get(
        path.strip("/").split("/")[0], "operations"
    )


def _statuses(app: HttpFunction, op: dict[str, Any], public: bool, limited: bool) -> list[int]:
    found = {400, 500, 503, *app.error_statuses}
    if not public:
        found.add(401)
    if "requestBody" in op:
        found |= {413, 415}
    if limited:
        found.add(429)
    return sorted(found)


def _describe(fn: Function, app: HttpFunction, schema: dict[str, Any]) -> dict[str, Any]:
    """The function's own schema with operation names, security, errors and headers."""
    source = ROOT / fn.code_uri / (fn.module.replace(".", "/") + ".py")
    module_doc = (ast.get_docstring(ast.parse(source.read_text())) or "").strip()
    limited = _limited(fn)
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            route = next(r for r in fn.routes if r.method == method.upper())
            op["operationId"] = fn.logical_id
            summary = _summary(module_doc)
            op["summary"] = summary[:1].upper() + summary[1:]
            op["description"] = module_doc
            op["tags"] = [_tag(path)]
            op["security"] = [] if route.public else [{BEARER: []}]
            responses = {
                code: r for code, r in op["responses"].items() if not _is_powertools_default(r)
            }
            for code, response in responses.items():
                response["description"] = "Success"
                if code == "204":
                    response.pop("content", None)
                if limited:
                    response["headers"] = {
                        name: {"$ref": f"#/components/headers/{name}"} for name in _RATE_HEADERS
                    }
            success = next(iter(responses.values()))
            for status in _statuses(app, op, route.public, limited):
                responses[str(status)] = {"$ref": f"#/components/responses/Problem{status}"}
            for status in app.model_statuses:
                responses[str(status)] = {**copy.deepcopy(success), "description": "See the body"}
            op["responses"] = dict(sorted(responses.items()))
    return schema


def _summary(doc: str) -> str:
    first = doc.split("\n\n")[0].replace("\n", " ")
    return first.split(": ", 1)[-1].rstrip(".") if ": " in first else first


def _limited(fn: Function) -> bool:
    value = fn.environment.get("RATE_LIMIT")
    return not (isinstance(value, str) and value.strip().lower() in ("off", "0"))


def _environment(tpl: Template, fn: Function) -> dict[str, str]:
    refs = {name: str(p.get("Default")) for name, p in tpl.raw["Parameters"].items()}
    refs.update(
        {lid: f"local-{lid}" for lid in tpl.raw["Resources"]},
        **{f"{lid}.Arn": f"arn:aws:local:{lid}" for lid in tpl.raw["Resources"]},
        RedisUrl="redis://127.0.0.1:1/0",  # never connected: building the schema is offline
    )
    return {k: template.resolve(v, refs) for k, v in fn.environment.items()}


def http_functions(tpl: Template) -> list[tuple[Function, HttpFunction]]:
    """Every function with an HTTP route and its resolver, loaded as the runtime loads it."""
    found = []
    for fn in sorted(tpl.functions.values(), key=lambda f: f.logical_id):
        if not fn.routes:
            continue
        handler = load_handler(fn, _environment(tpl, fn))
        app = getattr(handler, "__self__", None)
        if not isinstance(app, HttpFunction):
            raise TypeError(f"{fn.logical_id}: handler is not an HttpFunction's")
        found.append((fn, app))
    return found


def _check_components(schemas: list[dict[str, Any]]) -> None:
    """Two functions may share a model only if it is the same model."""
    seen: dict[str, Any] = {}
    for schema in schemas:
        for name, body in schema.get("components", {}).get("schemas", {}).items():
            if name in seen and seen[name] != body:
                raise ValueError(f"two different schemas are both called {name!r}")
            seen[name] = body


def build_document(tpl: Template | None = None) -> dict[str, Any]:
    tpl = tpl or template.load()
    merge = OpenAPIMerge(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        on_conflict="error",
    )
    schemas = []
    for fn, app in http_functions(tpl):
        raw = app.get_openapi_schema(title=TITLE, version=__version__)
        schemas.append(
            _describe(fn, app, raw.model_dump(mode="json", by_alias=True, exclude_none=True))
        )
    _check_components(schemas)
    for schema in schemas:
        merge.add_schema(copy.deepcopy(schema))
    doc = merge.get_openapi_schema()
    components = doc.setdefault("components", {})
    schemas_found = components.setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas_found.pop(unused, None)
    for kind, values in _components().items():
        components.setdefault(kind, {}).update(values)
    doc["components"] = {k: dict(sorted(v.items())) for k, v in sorted(components.items())}
    doc["paths"] = dict(sorted(doc.get("paths", {}).items()))
    doc["tags"] = [
        {"name": "catalog", "description": "Products, prices and stock; reads are public."},
        {"name": "cart", "description": "The caller's cart, kept in Redis."},
        {"name": "orders", "description": "Placing, reading and cancelling orders."},
        {
            "name": "operations",
            "description": (
                "For operators: the service's health, orders that need attention (list, "
                "retry, cancel, resolve; admin) and the redrive of dead letters (admin)."
            ),
        },
    ]
    return doc


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {DOCUMENT.relative_to(ROOT)}")
    group.add_argument("--check", action="store_true", help="fail when the file is stale")
    args = parser.parse_args(argv)
    text = render(build_document())
    if args.write:
        DOCUMENT.parent.mkdir(parents=True, exist_ok=True)
        DOCUMENT.write_text(text)
        return 0
    if args.check:
        current = Path(DOCUMENT).read_text() if DOCUMENT.exists() else ""
        if current != text:
            print(f"{DOCUMENT.relative_to(ROOT)} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
