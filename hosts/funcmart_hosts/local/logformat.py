"""Human-friendly function logs for `make dev`: one short line per record instead of JSON.

The functions log through Powertools Logger, whose JSON lines are what CloudWatch and a
Kubernetes log pipeline want. On a laptop the same records read better as

    10:42:07.113 INFO  GetProduct  cache miss  product_id=9f2c... correlation_id=b7f0...

The local platform wraps the Powertools formatter (so every key it would add, the correlation
id included, is still there) and prints its fields as text. Only the local platform installs
it: on Lambda and Knative the functions' JSON is untouched. `--log-format json` keeps JSON
locally too.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from aws_lambda_powertools.logging.formatter import BasePowertoolsFormatter

# Shown in the line's head, or not worth a column on a laptop.
_HEAD_KEYS = {"timestamp", "level", "message", "service", "function_name"}
_QUIET_KEYS = {
    "location",
    "cold_start",
    "function_memory_size",
    "function_arn",
    "function_request_id",
    "xray_trace_id",
    "sampling_rate",
    "exception",
    "exception_name",
    "stack_trace",
}


class HumanFormatter(logging.Formatter):
    """Renders what `inner` (a Powertools JSON formatter) would write as one text line; an
    exception follows on the next lines as Python prints it."""

    def __init__(self, inner: logging.Formatter, stack_prefix: str = "") -> None:
        super().__init__()
        self.inner = inner
        self.stack_prefix = stack_prefix

    def __getattr__(self, name: str) -> Any:
        # Powertools reaches its formatter through the handler (append_keys, clear_state,
        # ...): those go to the wrapped one, which keeps the keys.
        return getattr(self.inner, name)

    def format(self, record: logging.LogRecord) -> str:
        raw = self.inner.format(record)
        try:
            fields: dict[str, Any] = json.loads(raw)
        except ValueError:
            return raw
        if not isinstance(fields, dict):
            return raw
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        who = str(fields.get("function_name") or fields.get("service") or record.name)
        who = who.removeprefix(self.stack_prefix)
        message = fields.get("message")
        if not isinstance(message, str):
            message = json.dumps(message, default=str)
        extras = [
            f"{key}={_text(value)}"
            for key, value in fields.items()
            if key not in _HEAD_KEYS and key not in _QUIET_KEYS
        ]
        line = f"{when} {record.levelname:<5} {who}  {message}"
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif fields.get("exception"):
            line += "\n" + str(fields["exception"])
        return line


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else json.dumps(value)
    return json.dumps(value, default=str, separators=(",", ":"))


def install(stack_prefix: str = "", root: str = "funcmart") -> int:
    """Wrap the Powertools formatter of every handler on the functions' loggers (`root` and
    below) in a HumanFormatter. Idempotent; returns how many it wrapped this time."""
    names = [n for n in logging.root.manager.loggerDict if n == root or n.startswith(f"{root}.")]
    wrapped = 0
    for name in names:
        for handler in logging.getLogger(name).handlers:
            fmt = handler.formatter
            if isinstance(fmt, BasePowertoolsFormatter):
                handler.setFormatter(HumanFormatter(fmt, stack_prefix))
                wrapped += 1
    return wrapped
