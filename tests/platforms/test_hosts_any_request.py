"""Both hosts answer any method, any headers and (the local gateway, over a real socket) any
body framing with problem+json, read within their limits, and write no header value a
request could have broken.

The local gateway is served on 127.0.0.1 and spoken to over raw sockets, so the requests
can carry what an HTTP client library would refuse to send: negative or non-hex chunk
sizes, disagreeing Content-Length headers, unknown transfer codings, JWT headers whose
`alg` carries CR/LF. The Knative host is its functions-framework (Flask) app, called through
Werkzeug's test client. FUNCMART_HOST_EXAMPLES sets the generated requests per host
(default 120).
"""

from __future__ import annotations

import base64
import collections
import http.client
import json
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funcmart_hosts.gateway.auth import JwtConfig, TokenVerifier
from funcmart_hosts.gateway.routes import Route, RouteTable
from funcmart_hosts.gateway.template import Function, HttpRoute
from funcmart_hosts.knative import host as knative
from funcmart_hosts.local.gateway import Gateway
from funcmart_hosts.local.runtime import Invoker, LoadedFunction
from tests.support import report
from tests.support.asgi import AsgiClient
from tests.support.echo_function import handler as echo

SECRET = "host-test-secret-of-at-least-32-bytes!"
CONFIG = JwtConfig(issuer="https://funcmart.test/", audiences=("funcmart",))
EXAMPLES = int(os.environ.get("FUNCMART_HOST_EXAMPLES", "120"))
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)
ROUTES = [
    ("GET", "/open", True),
    ("POST", "/closed/{id}", False),
    ("DELETE", "/closed/{id}", False),
]
generated: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def _report_generated_cases() -> Iterator[None]:
    yield
    report.add(
        "generated host requests",
        f"{sum(generated.values())} requests, none answered outside problem+json "
        f"({generated['local']} to the local gateway over sockets, "
        f"{generated['knative']} to the Knative host)",
    )


# ------------------------------------------------------------------------- strategies
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=12)
methods = st.sampled_from(
    ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "PROPFIND"]
) | tokens.filter(lambda m: m.upper() != "CONNECT")
paths = st.sampled_from(["/open", "/closed/1", "/closed/", "/nowhere", "/open/"]) | st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40
).map(lambda p: "/" + p)
# Header values as a client can send them: Latin-1, no CR, LF or NUL (those would end the
# header on the wire, which the framing cases cover).
values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=60,
)
FRAMING = {"content-length", "transfer-encoding", "connection", "host", "expect"}
header_lists = st.lists(
    st.tuples(
        st.sampled_from(["X-Echo", "Content-Type", "Accept", "Cookie", "X-Correlation-Id"])
        | tokens.filter(lambda n: n.lower() not in FRAMING),
        values,
    ),
    max_size=8,
)


# Half of the requests call a route (so they reach the authorizer and the function), the
# others any method on any path.
calls = st.sampled_from([("GET", "/open"), ("POST", "/closed/1"), ("DELETE", "/closed/2")]) | (
    st.tuples(methods, paths)
)


def jwt_with_header(header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part(header)}.{part({'sub': 'x', 'exp': 4102444800})}.c2lnbmF0dXJl"


# alg and kid from the token's own header reach the error description.
hostile_jwt_headers = st.fixed_dictionaries(
    {
        "alg": st.sampled_from(["HS256", "none", "RS256\r\nX-Injected: 1", "\u2603\r\n"])
        | st.text(max_size=30),
        "kid": st.sampled_from(["k\r\nX-Injected: 1", "\n\n<html>"]) | st.text(max_size=20),
    }
)
authorizations = st.none() | hostile_jwt_headers.map(lambda h: f"Bearer {jwt_with_header(h)}")
authorizations = authorizations | authorizations.filter(bool)


@st.composite
def framings(draw: st.DrawFn) -> tuple[list[tuple[str, str]], bytes]:
    """Body framing headers and the bytes after the headers: well formed or not."""
    body = draw(st.binary(max_size=64))
    kind = draw(st.sampled_from(["none", "length", "lengths", "chunked", "bad-chunks", "coding"]))
    if kind == "none":
        return [], b""
    if kind == "length":
        return [("Content-Length", str(len(body)))], body
    if kind == "lengths":
        return [("Content-Length", str(len(body))), ("Content-Length", "1")], body
    if kind == "coding":
        coding = draw(st.sampled_from(["gzip", "gzip, chunked", "identity", "chunked, gzip"]))
        return [("Transfer-Encoding", coding)], body
    chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    if kind == "bad-chunks":
        bad = draw(st.sampled_from([b"-5", b"-1", b"zz", b" 5 5", b"0x10", b"1" * 30, b"ffff"]))
        wire += bad + b"\r\n" + body[:5]
    te = draw(st.sampled_from(["chunked", "Chunked"]))
    return [("Transfer-Encoding", te)], wire + (b"0\r\n\r\n" if kind == "chunked" else b"")


# --------------------------------------------------------------------------- judges
def assert_answer(status: int, headers: list[tuple[str, str]], body: bytes, method: str) -> None:
    named = {k.lower(): v for k, v in headers}
    assert "x-injected" not in named, headers
    assert all("\r" not in v and "\n" not in v for _, v in headers), headers
    assert status < 500 or status == 501, (status, body)
    if status >= 400:
        assert named.get("content-type") == "application/problem+json", (status, headers, body)
        if method.upper() != "HEAD":
            assert json.loads(body)["status"] == status
    if status == 405:
        assert named["allow"], headers
    if status == 401:
        assert named["www-authenticate"].startswith("Bearer"), headers


# ----------------------------------------------------------------------- local gateway
@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    loaded, table = {}, []
    for n, (method, path, public) in enumerate(ROUTES):
        spec = HttpRoute(method, path, public=public, authorizer=None if public else "Jwt")
        lid = f"Echo{n}"
        fn = Function(lid, f"{lid}.handler", ".", 3, {}, routes=(spec,))
        loaded[lid] = LoadedFunction(fn, f"local-{lid}", f"arn:{lid}", {}, echo)
        table.append(Route(lid, spec))
    gw = Gateway(
        RouteTable(table),
        Invoker(loaded),
        TokenVerifier(secret=SECRET),
        {"Jwt": CONFIG},
        max_body_bytes=1024,
    )
    gw.start()
    try:
        yield gw
    finally:
        gw.stop()


def send_raw(port: int, raw: bytes, method: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """One request as raw bytes; the write side is closed after it, so nothing waits for
    bytes that never come."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock, method=method.upper())
        response.begin()
        return response.status, response.getheaders(), response.read()


def request_bytes(method: str, path: str, headers: list[tuple[str, str]], rest: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + rest


@PROPERTY
@given(
    call=calls,
    headers=header_lists,
    authorization=authorizations,
    framing=framings(),
)
def test_the_local_gateway_answers_any_request_with_problem_json(
    gateway: Gateway,
    call: tuple[str, str],
    headers: list[tuple[str, str]],
    authorization: str | None,
    framing: tuple[list[tuple[str, str]], bytes],
) -> None:
    method, path = call
    framing_headers, rest = framing
    extra = [("Authorization", authorization)] if authorization else []
    raw = request_bytes(method, path, [*headers, *extra, *framing_headers], rest)
    generated["local"] += 1
    assert_answer(*send_raw(gateway.port, raw, method), method)


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /open HTTP/9.9\r\n\r\n",
        b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
        b"GET /open HTTP/1.1\r\n" + b"X-A: b\r\n" * 150 + b"\r\n",
        b"GET /open HTTP/1.1\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n",
    ],
)
def test_what_http_server_refuses_is_problem_json_too(gateway: Gateway, raw: bytes) -> None:
    status, headers, body = send_raw(gateway.port, raw, "GET")
    assert 400 <= status < 500 or status == 505
    assert {k.lower(): v for k, v in headers}["content-type"] == "application/problem+json"
    assert json.loads(body)["status"] == status


def test_a_negative_chunk_size_is_a_400_not_a_read_to_the_end(gateway: Gateway) -> None:
    raw = request_bytes("POST", "/closed/1", [("Transfer-Encoding", "chunked")], b"-5\r\n")
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(raw)  # the write side stays open: a read without bound would hang
        response = http.client.HTTPResponse(sock, method="POST")
        response.begin()
        assert response.status == 400
        assert b"chunk size" in response.read()


def test_a_method_no_route_takes_is_405_with_allow(gateway: Gateway) -> None:
    status, headers, body = send_raw(
        gateway.port, request_bytes("PUT", "/closed/7", [], b""), "PUT"
    )
    assert status == 405
    assert {k.lower(): v for k, v in headers}["allow"] == "DELETE, POST"
    assert json.loads(body)["title"] == "Method not allowed"


def test_a_jwt_alg_with_cr_lf_does_not_reach_www_authenticate(gateway: Gateway) -> None:
    token = jwt_with_header({"alg": "HS256\r\nX-Injected: yes", "kid": "a\r\nb"})
    raw = request_bytes("POST", "/closed/1", [("Authorization", f"Bearer {token}")], b"")
    status, headers, _ = send_raw(gateway.port, raw, "POST")
    assert status == 401
    named = {k.lower(): v for k, v in headers}
    assert "x-injected" not in named
    assert "\r" not in named["www-authenticate"]


# ------------------------------------------------------------------------ Knative host
@pytest.fixture(scope="module")
def knative_client() -> Iterator[Any]:
    routes = [{"route": f"{m} {p}", "public": public} for m, p, public in ROUTES]
    env = {
        "FUNCMART_FUNCTION": "Echo",
        "FUNCMART_HANDLER": "tests.support.echo_function.handler",
        "FUNCMART_TRIGGER": "http",
        "FUNCMART_ROUTES": json.dumps(routes),
        "FUNCMART_JWT_ISSUER": CONFIG.issuer,
        "FUNCMART_JWT_AUDIENCE": CONFIG.audiences[0],
        "FUNCMART_JWT_SECRET": SECRET,
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    knative.runtime.cache_clear()
    try:
        yield AsgiClient(knative.create_app())
    finally:
        knative.runtime.cache_clear()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@PROPERTY
@given(
    call=calls,
    headers=header_lists,
    authorization=authorizations,
    body=st.binary(max_size=64),
)
def test_the_knative_host_answers_any_request_with_problem_json(
    knative_client: Any,
    call: tuple[str, str],
    headers: list[tuple[str, str]],
    authorization: str | None,
    body: bytes,
) -> None:
    method, path = call
    extra = [("Authorization", authorization)] if authorization else []
    response = knative_client.open(path, method=method, headers=[*headers, *extra], data=body)
    generated["knative"] += 1
    assert_answer(response.status_code, list(response.headers.items()), response.data, method)


def test_knative_refuses_a_body_over_the_limit_with_problem_json(knative_client: Any) -> None:
    response = knative_client.post("/closed/1", data=b"x" * (knative.API_GATEWAY_BODY_LIMIT + 1))
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"


def test_knative_answers_a_method_no_route_takes_with_405_and_allow(knative_client: Any) -> None:
    response = knative_client.open("/closed/7", method="PUT")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, POST"


def read_answer(port: int, raw: bytes, timeout: float = 5) -> bytes:
    """Everything the server sends for `raw` until it closes or goes quiet (bounded)."""
    chunks: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # a bare CR does not end a header line (RFC 9112 2.2): refused, not split
        (b"GET /open HTTP/1.1\r\nHost: 127.0.0.1\rX-Sneaked: 1\r\n\r\n", 400),
        # Transfer-Encoding beside Content-Length (RFC 9112 6.1): refused and closed
        (
            b"POST /closed/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        # HTTP/0.9 has no status line to answer with: refused with an HTTP/1.1 one
        (b"GET /open\r\n\r\n", 400),
        # a chunk announced, then the client's side closed: the body can never end
        (
            b"GET /open HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nffff\r\n",
            400,
        ),
        (b"POST /closed/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\nabc", 400),
    ],
    ids=["bare CR", "TE and CL", "HTTP/0.9", "chunked body cut", "sized body cut"],
)
def test_rfc_9112_framing_is_the_http_librarys(gateway: Gateway, raw: bytes, status: int) -> None:
    answer = read_answer(gateway.port, raw)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert b"application/problem+json" in head.lower()
    assert json.loads(body)["status"] == status
    assert b"x-sneaked" not in answer.lower()


def test_an_absolute_form_target_is_routed_by_its_path(gateway: Gateway) -> None:
    raw = b"GET http://127.0.0.1/open HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    status, _headers, body = send_raw(gateway.port, raw, "GET")
    assert status == 200, body
