"""Settings are read once and checked at cold start: a wrong value stops the function with a
message naming the variable, never a silent fallback."""

from __future__ import annotations

import ssl

import pytest

from funcmart.settings import Settings, SettingsError, on_lambda

BASE = {"TABLE_NAME": "funcmart"}


def test_defaults_need_only_the_table():
    s = Settings.load(BASE)
    assert (s.table_name, s.publisher, s.metrics_backend) == ("funcmart", "sqs", "inprocess")


def test_an_argument_beats_the_environment_which_beats_the_default():
    s = Settings.load({**BASE, "MAX_BODY_BYTES": "100"}, table_name="other")
    assert (s.table_name, s.max_body_bytes, s.cache_ttl_seconds) == ("other", 100, 300)


def test_a_standard_fallback_variable_is_read_when_the_own_one_is_not_set():
    s = Settings.load({**BASE, "AWS_DEFAULT_REGION": "eu-west-1", "K_SINK": "http://broker"})
    assert (s.aws_region, s.broker_url) == ("eu-west-1", "http://broker")


def test_the_event_signing_keys_are_read_but_never_shown():
    env = {**BASE, "FUNCMART_EVENT_KEY": "s" * 40, "FUNCMART_EVENT_KEY_PREVIOUS": "p" * 40}
    s = Settings.load(env)
    assert (s.event_signing_key, s.event_signing_previous_key) == ("s" * 40, "p" * 40)
    assert "s" * 40 not in repr(s)
    assert "p" * 40 not in repr(s)


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("METRICS_BACKEND", "prometeus", "'emf' or 'inprocess'"),
        ("PUBLISHER", "kafka", "'sqs' or 'cloudevents'"),
        ("RATE_LIMIT_CLASS", "order", "'reads', 'writes', 'orders' or 'health'"),
        ("RATE_LIMIT", "10 per minute", "60/60s"),
        ("MAX_BODY_BYTES", "lots", "valid integer"),
        ("BATCH_CONCURRENCY", "0", "greater than or equal to 1"),
        ("BATCH_CONCURRENCY", "101", "less than or equal to 100"),
        ("BATCH_CONCURRENCY", "2.5", "whole number"),
        ("HEALTH_TIMEOUT_SECONDS", "nan", "finite"),
        ("HEALTH_TIMEOUT_SECONDS", "0", "greater than 0"),
        ("FUNCMART_CLIENTS_AT_COLD_START", "maybe", "true or false"),
        ("REDRIVE_METHOD", "move", "'move-task' or 'copy'"),
    ],
)
def test_a_misspelled_or_malformed_value_is_refused_naming_the_variable(name, value, says):
    with pytest.raises(SettingsError) as refused:
        Settings.load({**BASE, name: value})
    assert name in str(refused.value)
    assert says in str(refused.value)


def test_every_problem_is_named_at_once():
    with pytest.raises(SettingsError) as refused:
        Settings.load({"PUBLISHER": "kafka", "MAX_BODY_BYTES": "-1"})
    assert str(refused.value).split("; ") == [
        "TABLE_NAME is not set",
        "MAX_BODY_BYTES='-1': must be greater than 0",
        "PUBLISHER='kafka': must be 'sqs' or 'cloudevents'",
    ]


def test_arguments_are_checked_as_the_environment_is():
    s = Settings.load(BASE, max_body_bytes=10, clients_at_cold_start=False, cache_ttl_seconds="7")
    assert (s.max_body_bytes, s.clients_at_cold_start, s.cache_ttl_seconds) == (10, False, 7)
    assert (
        Settings.load({**BASE, "FUNCMART_CLIENTS_AT_COLD_START": "No"}).clients_at_cold_start
        is False
    )
    with pytest.raises(SettingsError, match="MAX_BODY_BYTES"):
        Settings.load(BASE, max_body_bytes=0)
    with pytest.raises(SettingsError, match="PUBLISHER"):
        Settings.load(BASE, publisher="kafka")


def test_a_whole_number_may_be_written_with_a_zero_fraction():
    # CloudFormation passes a Number parameter on as it was typed (RetryBackoffBaseSeconds=2.0)
    s = Settings.load({**BASE, "RETRY_BACKOFF_BASE_SECONDS": "2.0", "MAX_BODY_BYTES": " 100 "})
    assert (s.retry_backoff_base_seconds, s.max_body_bytes) == (2, 100)


def test_none_given_for_a_setting_that_needs_a_value_is_refused():
    with pytest.raises(SettingsError, match="METRICS_BACKEND=None: must be set"):
        Settings.load(BASE, metrics_backend=None)
    assert Settings.load(BASE, dead_letter_queue_url=None).dead_letter_queue_url is None


def test_a_missing_table_is_refused():
    with pytest.raises(SettingsError, match="TABLE_NAME is not set"):
        Settings.load({})


def test_an_unknown_argument_is_refused():
    with pytest.raises(SettingsError, match="unknown settings"):
        Settings.load(BASE, tabel_name="x")


def test_on_lambda_means_the_runtime_itself_not_an_emulator():
    assert on_lambda({"AWS_LAMBDA_FUNCTION_NAME": "GetProduct"})
    assert not on_lambda({"AWS_LAMBDA_FUNCTION_NAME": "GetProduct", "AWS_SAM_LOCAL": "true"})
    assert not on_lambda({})
    assert Settings.load({**BASE, "AWS_LAMBDA_FUNCTION_NAME": "f"}).metrics_backend == "emf"


def test_clients_are_built_at_cold_start_unless_left_to_their_first_use() -> None:
    from funcmart.bootstrap import Container

    # GIVEN the default (Lambda: its init phase builds what a function names)
    eager = Container(Settings.load({"TABLE_NAME": "t"}))
    eager.ready("clock")
    assert eager.built("clock") is not None
    # WHEN the host leaves clients to their first use (the Knative host does)
    lazy = Container(Settings.load({"TABLE_NAME": "t", "FUNCMART_CLIENTS_AT_COLD_START": "false"}))
    lazy.ready("clock")
    # THEN nothing is built until it is used, and then it is
    assert lazy.built("clock") is None
    assert lazy.clock is not None
    assert lazy.built("clock") is not None


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "rediss://:secret@master.funcmart.abc123.use1.cache.amazonaws.com:6379/0",
        "unix:///run/redis.sock",
    ],
)
def test_a_redis_url_may_use_tls(url: str) -> None:
    assert Settings.load({**BASE, "REDIS_URL": url}).redis_url == url


def test_a_redis_url_of_another_scheme_is_refused_without_showing_it() -> None:
    with pytest.raises(SettingsError, match="REDIS_URL") as refused:
        Settings.load({**BASE, "REDIS_URL": "http://:hunter2hunter2@cache:6379"})
    assert "hunter2" not in str(refused.value)
    assert "hunter2" not in repr(Settings.load({**BASE, "REDIS_URL": "redis://:hunter2@h:1"}))


def test_a_rediss_url_connects_over_tls() -> None:
    import redis

    from funcmart.adapters.redis_store import connect

    client = connect("rediss://:pw@cache.example:6379/0", 0.25)
    connection = client.connection_pool.make_connection()  # not connected yet
    assert isinstance(connection, redis.SSLConnection)
    assert connection.cert_reqs == ssl.CERT_REQUIRED  # the server's certificate is verified


def test_no_secret_shows_in_the_settings_repr() -> None:
    settings = Settings.load(
        {
            "TABLE_NAME": "t",
            "STRIPE_API_KEY": "sk_live_do-not-print-me",
            "REDIS_URL": "rediss://default:redis-password-here@cache.internal:6380/0",
            "FUNCMART_EVENT_KEY": "event-key-do-not-print-me-32-bytes!!",
        }
    )
    for shown in (repr(settings), str(settings)):
        assert "do-not-print-me" not in shown
        assert "redis-password-here" not in shown
        assert "cache.internal" not in shown  # the Redis URL is left out whole


def test_a_password_in_a_redis_url_query_is_redacted() -> None:
    from funcmart.settings import redact_url

    assert "hunter2" not in redact_url("redis://cache:6379/0?password=hunter2&ssl=true")
    assert redact_url("redis://:hunter2@cache:6379/0") == "redis://:<redacted>@cache:6379/0"


@pytest.mark.parametrize(
    "platform",
    [{"AWS_LAMBDA_FUNCTION_NAME": "ProcessOrder"}, {"K_SERVICE": "process-order"}],
    ids=["Lambda", "Knative"],
)
def test_the_payment_simulator_is_refused_on_a_deployed_platform(platform) -> None:
    env = {"TABLE_NAME": "t", "PAYMENT_PROVIDER": "simulator", **platform}
    with pytest.raises(SettingsError, match="FUNCMART_ALLOW_SIMULATOR"):
        Settings.load(env)
    with pytest.raises(SettingsError):
        Settings.load({**env, "FUNCMART_ALLOW_SIMULATOR": "true"})  # not loud enough


def test_the_payment_simulator_runs_deployed_only_with_the_loud_override(caplog) -> None:
    env = {
        "TABLE_NAME": "t",
        "PAYMENT_PROVIDER": "simulator",
        "K_SERVICE": "process-order",
        "FUNCMART_ALLOW_SIMULATOR": "yes-orders-are-not-paid-for",
    }
    assert Settings.load(env).payment_provider == "simulator"
    assert "PAYMENT SIMULATOR ON A DEPLOYED PLATFORM" in caplog.text


@pytest.mark.parametrize("local", [{}, {"AWS_LAMBDA_FUNCTION_NAME": "F", "AWS_SAM_LOCAL": "true"}])
def test_the_payment_simulator_runs_in_development_and_tests(local) -> None:
    env = {"TABLE_NAME": "t", "PAYMENT_PROVIDER": "simulator", **local}
    assert Settings.load(env).payment_provider == "simulator"


def test_a_dependency_first_used_by_many_threads_at_once_is_built_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from funcmart.adapters import system
    from funcmart.bootstrap import Container

    built: list[object] = []
    original = system.SystemClock.__init__

    def slow_init(self: object) -> None:
        built.append(self)
        time.sleep(0.05)  # long enough for every thread to ask meanwhile
        original(self)  # type: ignore[arg-type]

    monkeypatch.setattr(system.SystemClock, "__init__", slow_init)
    # GIVEN a container that builds at first use (the Knative host's)
    deps = Container(Settings.load({"TABLE_NAME": "t", "FUNCMART_CLIENTS_AT_COLD_START": "false"}))
    seen: list[object] = []
    start = threading.Barrier(8)

    def first_use() -> None:
        start.wait(5)
        seen.append(deps.clock)

    # WHEN eight requests use it at once
    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # THEN it was built once, and every request got that one
    assert len(built) == 1
    assert len(seen) == 8
    assert all(s is seen[0] for s in seen)
