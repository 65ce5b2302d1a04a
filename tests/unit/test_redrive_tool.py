"""`make redrive` carries an admin's token: it reads it from the environment or a file,
never argv; sends it over https (or to this machine); never follows a redirect with it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tools import redrive

TOKEN = "admin-token-for-the-redrive-test"
REPORT = {"queues": [{"deadLetterQueue": "dlq", "sourceQueue": "q", "moved": 2}]}


@contextmanager
def api(redirect_to: str | None = None) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """An API on 127.0.0.1 that records each request's headers; it answers the redrive, or
    redirects to `redirect_to`."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            seen.append(dict(self.headers.items()))
            if redirect_to:
                self.send_response(307)
                self.send_header("Location", redirect_to + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = json.dumps(REPORT).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_comes_from_the_environment():
    with api() as (url, seen):
        assert redrive.main(["--api", url], env={redrive.TOKEN_ENV: TOKEN}) == 0
    assert seen[0]["Authorization"] == f"Bearer {TOKEN}"


def test_the_token_comes_from_a_file(tmp_path: Path):
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    with api() as (url, seen):
        assert redrive.main(["--api", url, "--token-file", str(path)], env={}) == 0
    assert seen[0]["Authorization"] == f"Bearer {TOKEN}"


def test_a_token_on_the_command_line_is_refused_and_nothing_is_sent(capsys):
    with api() as (url, seen):
        assert redrive.main(["--api", url, "--token", TOKEN], env={}) == 2
    assert seen == []
    assert "FUNCMART_ADMIN_TOKEN" in capsys.readouterr().err


def test_a_redirect_is_not_followed_so_the_token_stays_home(capsys):
    # GIVEN an API that redirects to another host (localhost is another name here)
    with (
        api() as (elsewhere, taken),
        api(redirect_to=elsewhere.replace("127.0.0.1", "localhost")) as (
            url,
            seen,
        ),
    ):
        # WHEN the tool is pointed at it
        code = redrive.main(["--api", url], env={redrive.TOKEN_ENV: TOKEN})
    # THEN it stops at the redirect, and the other host never sees the token
    assert code == 1
    assert len(seen) == 1
    assert taken == []
    assert "not followed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    ["http://api.example.com", "http://10.0.0.5:3000", "ftp://127.0.0.1", "https://u:p@x.example"],
)
def test_plain_http_is_refused_except_to_this_machine(url: str, capsys):
    assert redrive.main(["--api", url], env={redrive.TOKEN_ENV: TOKEN}) == 2
    assert "redrive:" in capsys.readouterr().err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.0.0.2"])
def test_loopback_may_be_plain_http(host: str):
    assert redrive.checked_api(f"http://{host}:3000/") == f"http://{host}:3000"


def test_a_deployed_api_without_a_token_is_refused_not_given_a_dev_one(capsys):
    assert redrive.main(["--api", "https://api.example.com"], env={}) == 2
    assert "FUNCMART_ADMIN_TOKEN" in capsys.readouterr().err
