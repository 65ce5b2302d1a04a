"""The catalog over real HTTP through the local gateway, DynamoDB Local and Redis."""

from __future__ import annotations

import socket
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = [pytest.mark.dynamodb, pytest.mark.redis]
PROBLEM = "application/problem+json"


def new_product(category: str = "books", name: str | None = None) -> dict:
    return {
        "name": name or f"Product {uuid.uuid4().hex[:6]}",
        "category": category,
        "price": {"amount": 1250, "currency": "EUR"},
        "stock": 3,
    }


def create(api, auth, body: dict) -> dict:
    resp = api.post("/products", json=body, headers=auth("admin"))
    assert resp.status_code == 201, resp.text
    return resp.json()


def test_an_admin_creates_a_product_and_reads_it_twice_the_second_from_cache(api, auth):
    # GIVEN an admin token, WHEN the admin creates a product
    resp = api.post("/products", json=new_product(), headers=auth("admin"))
    # THEN it is created, and says where it lives
    assert resp.status_code == 201, resp.text
    product = resp.json()
    assert resp.headers["location"] == f"/products/{product['id']}"
    assert resp.headers["apigw-requestid"]
    # WHEN anyone reads it twice THEN the second read comes from Redis
    first = api.get(f"/products/{product['id']}")
    second = api.get(f"/products/{product['id']}")
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-cache"] == "MISS"
    assert second.headers["x-cache"] == "HIT"
    assert second.json() == product


def test_a_category_lists_across_pages_with_the_cursor(api, auth):
    category = f"cat-{uuid.uuid4().hex[:8]}"
    made = {create(api, auth, new_product(category, f"Item {i:02d}"))["id"] for i in range(7)}
    seen, pages, cursor = [], 0, None
    while pages < 10:
        params = {"category": category, "limit": 3} | ({"cursor": cursor} if cursor else {})
        page = api.get("/products", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [p["id"] for p in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert pages == 3
    assert sorted(seen) == sorted(made)
    assert len(seen) == len(set(seen))


def test_a_stale_version_is_a_conflict(api, auth):
    product = create(api, auth, new_product())
    admin = auth("admin")
    path = f"/products/{product['id']}"
    fresh = api.patch(path, json={"version": 1, "name": "Renamed"}, headers=admin)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["version"] == 2
    stale = api.patch(path, json={"version": 1, "name": "Again"}, headers=admin)
    assert stale.status_code == 409
    assert stale.headers["content-type"] == PROBLEM
    # the write invalidated the cache: readers see the new name
    assert api.get(path).json()["name"] == "Renamed"


def test_a_customer_may_not_write_the_catalog(api, auth):
    resp = api.post("/products", json=new_product(), headers=auth("customer"))
    assert resp.status_code == 403
    assert resp.headers["content-type"] == PROBLEM


def test_garbage_json_is_a_400_problem(api, auth):
    headers = auth("admin") | {"content-type": "application/json"}
    resp = api.post("/products", content=b'{"name": ', headers=headers)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["status"] == 400


def test_a_protected_route_without_a_token_is_401(api):
    resp = api.post("/products", json=new_product())
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert resp.headers["content-type"] == PROBLEM


def test_an_unknown_route_is_a_404_problem(api):
    resp = api.get("/no/such/route")
    assert resp.status_code == 404
    assert resp.headers["content-type"] == PROBLEM


def test_concurrent_requests_each_get_their_own_answer(api, auth):
    # GIVEN a product, and admins, customers and anonymous readers calling different
    # functions at the same time
    product = create(api, auth, new_product())
    path = f"/products/{product['id']}"
    admin, customer = auth("admin"), auth("customer")
    calls = []
    for i in range(8):
        calls.append(("POST", "/products", admin, new_product(), 201))
        calls.append(("PATCH", path, customer, {"version": 1, "name": f"Hijacked {i}"}, 403))
        calls.append(("GET", path, {}, None, 200))

    def send(call):
        method, url, headers, body, _expected = call
        return api.request(method, url, json=body, headers=headers).status_code

    # WHEN they all arrive together THEN each is authorized on its own token
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(send, calls, timeout=60))
    assert statuses == [expected for *_, expected in calls]
    assert api.get(path).json()["name"] == product["name"]


def raw_request(platform, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", platform.gateway.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)


def test_a_body_over_10_mb_is_refused_with_413_before_it_is_read(platform):
    head = (
        "POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {10 * 1024 * 1024 + 1}\r\n\r\n"
    )
    answer = raw_request(platform, head.encode())
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"application/problem+json" in answer


def test_a_chunked_body_arrives_whole(platform, auth):
    import json

    body = json.dumps(new_product()).encode()
    token = auth("admin")["Authorization"]
    head = (
        f"POST /products HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {token}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:10], body[10:])
    )
    answer = raw_request(platform, head.encode() + chunked + b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
