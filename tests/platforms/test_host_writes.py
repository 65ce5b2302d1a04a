"""What the hosts write per request: each response in one send, access lines gathered."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from funcmart_hosts.gateway.edge import Outcome
from funcmart_hosts.gateway.responses import HttpResponse
from funcmart_hosts.knative.host import AccessLog
from funcmart_hosts.serving import OneSend


class RecordingTransport:
    """An asyncio transport that records what reaches it, one entry per send."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, chunks: Any) -> None:
        self.sends.append(b"".join(chunks))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


async def _sends(steps: Any) -> tuple[RecordingTransport, list[list[bytes]]]:
    transport = RecordingTransport()
    one = OneSend(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    seen = []
    for step in steps:
        step(one)
        seen.append(list(transport.sends))
        await asyncio.sleep(0)  # the loop's next turn
    return transport, seen


def test_a_head_and_its_body_leave_in_one_send() -> None:
    transport, seen = asyncio.run(
        _sends([lambda t: (t.write(b"HTTP/1.1 200 OK\r\n\r\n"), t.write(b"{}"))])
    )
    assert seen == [[b"HTTP/1.1 200 OK\r\n\r\n{}"]]
    assert transport.sends == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


def test_a_lone_write_leaves_on_the_next_turn_and_closing_sends_what_is_held_first() -> None:
    transport, seen = asyncio.run(
        _sends([lambda t: t.write(b"HTTP/1.1 204 No Content\r\n\r\n"), lambda _t: None])
    )
    assert seen[0] == []
    assert transport.sends == [b"HTTP/1.1 204 No Content\r\n\r\n"]

    transport, _ = asyncio.run(_sends([lambda t: (t.write(b"bye"), t.close())]))
    assert transport.sends == [b"bye"]
    assert transport.closed
    # everything else is the transport's own
    assert OneSend(transport, None).get_extra_info("peername") == "info:peername"  # type: ignore[arg-type]


def _line(log: AccessLog, n: int) -> None:
    outcome = Outcome(HttpResponse(200, [], b"{}"), f"rid-{n}", "GetProduct", "GET /x")
    log({"method": "GET", "path": f"/x/{n}"}, outcome, 0.0, "GetProduct")


class CountingStream(io.StringIO):
    writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_access_lines_of_a_tenth_of_a_second_leave_in_one_write() -> None:
    stream = CountingStream()
    log = AccessLog(stream)

    async def serve() -> str:
        for n in range(5):
            _line(log, n)
        before = stream.getvalue()
        await asyncio.sleep(AccessLog.FLUSH_SECONDS * 3)
        return before

    assert asyncio.run(serve()) == ""  # gathered, not written per request
    lines = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert [x["request_id"] for x in lines] == [f"rid-{n}" for n in range(5)]
    assert stream.writes == 1


def test_access_lines_left_at_shutdown_are_written() -> None:
    stream = CountingStream()
    log = AccessLog(stream)

    async def serve() -> None:
        _line(log, 1)

    asyncio.run(serve())  # the loop ends before the timer fires
    assert stream.getvalue() == ""
    log.flush()  # what the host's main() does when the server stops
    assert json.loads(stream.getvalue())["request_id"] == "rid-1"
