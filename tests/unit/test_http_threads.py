"""HttpFunction is safe to call from several threads at once: no request state is shared.

Powertools' resolver keeps the request being resolved on the class; HttpFunction keeps it per
invocation. Without that, a handler that waits on I/O (here: a barrier that makes every pair
of requests overlap) reads the other thread's event and answers with the wrong caller.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from funcmart.bootstrap import Container
from funcmart.entrypoints.http import HttpFunction
from funcmart.settings import Settings
from tests.fakes import FakeMetrics
from tests.support.events import http_event

REQUESTS_PER_THREAD = 200


def make_app(barrier: threading.Barrier) -> HttpFunction:
    settings = Settings.load({}, table_name="t", rate_limit="off")
    app = HttpFunction(Container(settings, metrics=FakeMetrics()))

    @app.get("/me/<item>")
    def whoami(item: str) -> dict[str, str]:
        before = app.principal().subject
        barrier.wait(timeout=5)  # both threads are inside a request now
        return {"sub": app.principal().subject, "before": before, "item": item}

    return app


def test_two_threads_with_different_callers_never_see_each_others_claims():
    # GIVEN one function served by two threads at once, each for its own caller
    barrier = threading.Barrier(2)
    app = make_app(barrier)

    def caller(sub: str) -> list[dict[str, str]]:
        answers = []
        for i in range(REQUESTS_PER_THREAD):
            event = http_event("GET", f"/me/{sub}-{i}", sub=sub, path_parameters=None)
            result = app.handler(event, None)
            assert result["statusCode"] == 200, result
            answers.append(json.loads(result["body"]))
        return answers

    # WHEN both send 200 requests whose handling overlaps
    with ThreadPoolExecutor(2) as pool:
        alice, bob = pool.map(caller, ["alice", "bob"])

    # THEN every answer names its own caller and its own path, before and after the overlap
    for sub, answers in (("alice", alice), ("bob", bob)):
        assert len(answers) == REQUESTS_PER_THREAD
        for i, answer in enumerate(answers):
            assert answer == {"sub": sub, "before": sub, "item": f"{sub}-{i}"}


def test_current_event_outside_a_request_is_an_error_not_a_stale_request():
    app = make_app(threading.Barrier(1))
    app.handler(http_event("GET", "/me/x", sub="alice"), None)
    with pytest.raises(RuntimeError, match="no request"):
        _ = app.current_event
