"""The event loop's Redis script client (funcmart.adapters.redis_loop) against a real Redis:
replies, the connection pool, a script Redis forgot, a connection Redis closed, errors and
deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from funcmart.adapters.redis_loop import LoopScript, ScriptError

ECHO = "return {tonumber(ARGV[1]) + 1, ARGV[2], redis.call('GET', KEYS[1]), KEYS[1]}"


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_script_answers_numbers_text_and_nil(redis_url: str, redis_client: Any) -> None:
    script = LoopScript(redis_url, ECHO, 2.0)

    async def twice() -> list[Any]:
        return [
            await script(keys=["loop:absent"], args=[41, "héllo"]),
            await script(keys=["loop:present"], args=[1, "x"]),
        ]

    redis_client.set("loop:present", "value")
    first, second = run(twice())
    assert first == [42, "héllo", None, "loop:absent"]
    assert second == [2, "x", "value", "loop:present"]


def test_sequential_calls_share_one_connection(redis_url: str) -> None:
    script = LoopScript(redis_url, "return 1", 2.0)

    async def calls() -> int:
        for _ in range(5):
            assert await script(keys=[], args=[]) == 1
        return len(script._idle)

    assert run(calls()) == 1


def test_a_script_used_from_another_loop_opens_connections_of_its_own(redis_url: str) -> None:
    script = LoopScript(redis_url, "return 3", 2.0)
    # GIVEN a call on one event loop (which then closes), WHEN another loop calls
    # THEN it is answered (the first loop's connection is not used)
    assert run(script(keys=[], args=[])) == 3
    assert run(script(keys=[], args=[])) == 3


def test_the_url_database_is_the_one_written(redis_url: str, redis_client: Any) -> None:
    # GIVEN the tests' own database in the URL (not 0)
    assert urlsplit(redis_url).path not in ("", "/", "/0")
    script = LoopScript(redis_url, "return redis.call('SET', KEYS[1], ARGV[1])", 2.0)
    # WHEN the script writes a key
    run(script(keys=["loop:db"], args=["here"]))
    # THEN it is in that database
    assert redis_client.get("loop:db") == "here"


def test_a_script_redis_forgot_is_sent_again(redis_url: str, redis_client: Any) -> None:
    script = LoopScript(redis_url, "return 'kept'", 2.0)

    async def around_a_flush() -> list[Any]:
        first = await script(keys=[], args=[])
        redis_client.script_flush()  # what a Redis restart does to the script cache
        return [first, await script(keys=[], args=[]), await script(keys=[], args=[])]

    assert run(around_a_flush()) == ["kept", "kept", "kept"]


def test_a_connection_redis_closed_while_idle_is_replaced_at_once(
    redis_url: str, redis_client: Any
) -> None:
    script = LoopScript(redis_url, "return 7", 2.0)

    async def around_a_kill() -> tuple[int, int, Any, Any]:
        await script(keys=[], args=[])
        (kept,) = script._idle
        host, port = kept._transport.get_extra_info("sockname")[:2]
        # GIVEN Redis closed the pooled connection (a restart, an idle timeout, CLIENT KILL)
        assert redis_client.client_kill(f"{host}:{port}")
        await asyncio.sleep(0.05)
        # WHEN the next call comes
        answer = await script(keys=[], args=[])
        return answer, len(script._idle), kept, script._idle[0]

    answer, idle, before, after = run(around_a_kill())
    # THEN it is answered, on a new connection
    assert answer == 7
    assert idle == 1
    assert after is not before


def test_an_error_reply_raises_script_error(redis_url: str) -> None:
    script = LoopScript(redis_url, "return redis.error_reply('refused here')", 2.0)
    with pytest.raises(ScriptError, match="refused here"):
        run(script(keys=[], args=[]))


def test_a_user_and_password_in_the_url_sign_in(redis_url: str, redis_client: Any) -> None:
    # GIVEN a Redis user of its own (as a deployed Redis with auth has), unique to this run,
    # allowed the keys loop:acl:* only
    user, password = f"funcmart-loop-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    redis_client.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["loop:acl:*"], commands=["+@all"]
    )
    try:
        parts = urlsplit(redis_url)
        url = urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))
        script = LoopScript(url, "return redis.call('SET', KEYS[1], 'x')", 2.0)
        # WHEN calls sign in with them
        # THEN they run as that user: its keys are written, others refused
        assert run(script(keys=["loop:acl:mine"], args=[])) == "OK"
        with pytest.raises(ScriptError, match=r"(?i)permission"):
            run(script(keys=["loop:other"], args=[]))
    finally:
        redis_client.acl_deluser(user)


def test_a_redis_that_refuses_the_password_fails_the_call(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    wrong = urlunsplit(parts._replace(netloc=f":not-the-password@{parts.hostname}:{parts.port}"))
    with pytest.raises(ScriptError, match=r"(?i)auth|password"):
        run(LoopScript(wrong, "return 1", 2.0)(keys=[], args=[]))


def test_nothing_listening_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(ConnectionRefusedError):
        run(LoopScript(f"redis://127.0.0.1:{port}/0", "return 1", 2.0)(keys=[], args=[]))


@contextlib.contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts and never answers: a Redis that hangs."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        for conn in held:
            conn.close()
        listener.close()


def test_a_redis_that_never_answers_times_out_within_the_deadline() -> None:
    with silent_server() as port:
        script = LoopScript(f"redis://127.0.0.1:{port}/0", "return 1", 0.3)

        async def call() -> float:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(TimeoutError):
                await script(keys=[], args=[])
            return loop.time() - started

        assert run(call()) < 2.0
        # AND the connection that timed out is not kept for the next call
        assert not script._idle


def test_a_cancelled_call_does_not_return_its_connection(redis_url: str) -> None:
    script = LoopScript(redis_url, "return 1", 2.0)
    with silent_server() as port:
        hung = LoopScript(f"redis://127.0.0.1:{port}/0", "return 1", 5.0)

        async def cancelled() -> int:
            task = asyncio.ensure_future(hung(keys=[], args=[]))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return len(hung._idle)

        assert run(cancelled()) == 0
    assert run(script(keys=[], args=[])) == 1


def test_other_schemes_are_refused_when_built() -> None:
    with pytest.raises(ValueError, match="redis://"):
        LoopScript("unix:///tmp/redis.sock", "return 1", 1.0)
