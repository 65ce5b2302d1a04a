"""The context object the Lambda Python runtime passes to a handler."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


_STREAMS: dict[str, str] = {}


def _log_stream(function_name: str) -> str:
    """One log stream per function per process, as one Lambda execution environment has:
    named once, not per invocation."""
    stream = _STREAMS.get(function_name)
    if stream is None:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        stream = _STREAMS.setdefault(function_name, f"{day}/[$LATEST]{uuid.uuid4().hex}")
    return stream


class LambdaContext:
    """The context object the Python runtime passes as the handler's second argument."""

    def __init__(
        self,
        function_name: str,
        memory_mb: int,
        timeout_seconds: float,
        invoked_function_arn: str,
        request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = _log_stream(function_name)
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
