"""Rate limits: the GCRA arithmetic, and the HTTP platform applying it to every function."""

from __future__ import annotations

import json

import pytest

from funcmart.bootstrap import Container
from funcmart.domain.ratelimit import RatePolicy, gcra, parse_policy
from funcmart.entrypoints.http import HttpFunction
from funcmart.settings import Settings, SettingsError
from tests.fakes import FakeClock, FakeMetrics, FakeRateLimiter
from tests.support.events import http_event


class TestPolicy:
    @pytest.mark.parametrize(
        ("spec", "limit", "period"),
        [("60/60s", 60, 60), ("10/m", 10, 60), ("1000/1h", 1000, 3600), (" 5 / 2s ", 5, 2)],
    )
    def test_parses_count_per_period(self, spec, limit, period):
        assert parse_policy(spec) == RatePolicy(limit, period)

    @pytest.mark.parametrize("spec", ["off", "OFF", "0"])
    def test_off_means_no_limit(self, spec):
        assert parse_policy(spec) is None

    @pytest.mark.parametrize("spec", ["60", "60/60x", "-1/60s", "0/0s", "a/b"])
    def test_rejects_anything_else(self, spec):
        with pytest.raises(ValueError, match="rate limit"):
            parse_policy(spec)


class TestGcra:
    policy = RatePolicy(limit=3, period_seconds=60)

    def run(self, times_s):
        tat, out = None, []
        for t in times_s:
            decision, tat = gcra(tat, t * 1000, self.policy)
            out.append(decision)
        return out

    def test_a_burst_of_the_whole_budget_is_allowed_then_refused(self):
        decisions = self.run([0, 0, 0, 0])
        assert [d.allowed for d in decisions] == [True, True, True, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0]

    def test_a_refusal_says_when_to_come_back(self):
        refused = self.run([0, 0, 0, 0])[-1]
        assert refused.retry_after_seconds == 20  # one emission interval: 60 s / 3
        assert refused.reset_seconds == 60

    def test_the_budget_refills_one_request_per_interval(self):
        decisions = self.run([0, 0, 0, 20])
        assert decisions[-1].allowed
        assert decisions[-1].remaining == 0

    def test_a_quiet_caller_gets_the_whole_budget_back(self):
        assert self.run([0, 0, 0, 60])[-1].remaining == 2

    def test_headers_name_limit_remaining_reset_and_policy(self):
        d = self.run([0])[0]
        assert d.headers(self.policy) == {
            "RateLimit-Limit": "3",
            "RateLimit-Remaining": "2",
            "RateLimit-Reset": "20",
            "RateLimit-Policy": "3;w=60",
        }


def make_app(limit: str | None = "2/60s", route_class: str | None = "writes", **deps):
    settings = Settings.load({}, table_name="t", rate_limit=limit, rate_limit_class=route_class)
    limiter = deps.pop("rate_limiter", FakeRateLimiter(FakeClock()))
    container = Container(settings, rate_limiter=limiter, metrics=FakeMetrics(), **deps)
    app = HttpFunction(container)

    @app.post("/things")
    def create() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/things")
    def read() -> dict[str, str]:
        return {"ok": "yes"}

    return app, limiter, container


def call(app, method="POST", **kw):
    return app.handler(http_event(method, "/things", {} if method == "POST" else None, **kw), None)


class TestHttpFunction:
    def test_every_answer_carries_the_ratelimit_headers(self):
        app, _, _ = make_app()
        answer = call(app, sub="alice")
        assert answer["statusCode"] == 200
        assert answer["headers"]["RateLimit-Limit"] == "2"
        assert answer["headers"]["RateLimit-Remaining"] == "1"

    def test_over_the_limit_is_429_problem_json_with_retry_after(self):
        app, _, deps = make_app()
        for _ in range(2):
            call(app, sub="alice")
        answer = call(app, sub="alice")
        assert answer["statusCode"] == 429
        assert answer["headers"]["Content-Type"] == "application/problem+json"
        assert answer["headers"]["Retry-After"] == "30"
        assert answer["headers"]["RateLimit-Remaining"] == "0"
        body = json.loads(answer["body"])
        assert body["status"] == 429
        assert body["title"] == "Too many requests"
        assert deps.metrics.counters["RateLimited"] == 1

    def test_callers_are_counted_apart(self):
        app, _, _ = make_app()
        for _ in range(2):
            call(app, sub="alice")
        assert call(app, sub="bob")["statusCode"] == 200

    def test_anonymous_callers_count_by_source_ip(self):
        app, limiter, _ = make_app()
        call(app, source_ip="203.0.113.9")
        call(app, sub="carol")
        assert limiter.keys == ["writes:ip:203.0.113.9", "writes:sub:carol"]

    def test_without_a_configured_class_the_method_picks_reads_or_writes(self):
        app, limiter, _ = make_app(limit=None, route_class=None)
        call(app, "GET", sub="dan")
        call(app, "POST", sub="dan")
        assert limiter.keys == ["reads:sub:dan", "writes:sub:dan"]

    def test_off_counts_nothing(self):
        app, limiter, _ = make_app(limit="off")
        for _ in range(5):
            assert call(app, sub="erin")["statusCode"] == 200
        assert limiter.keys == []

    def test_redis_out_fails_open_and_counts_it(self):
        limiter = FakeRateLimiter()
        limiter.available = False
        app, _, deps = make_app(rate_limiter=limiter)
        for _ in range(3):
            answer = call(app, sub="frank")
            assert answer["statusCode"] == 200
            assert "RateLimit-Limit" not in answer["headers"]
        assert deps.metrics.counters["RateLimiterFailOpen"] == 3

    def test_a_bad_limit_fails_at_cold_start(self):
        with pytest.raises(SettingsError):
            make_app(limit="lots")
        with pytest.raises(SettingsError):
            make_app(route_class="everything")
