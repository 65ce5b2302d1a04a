"""The local platform's text logs: what Powertools would write as JSON, as one short line;
JSON stays JSON wherever the local platform does not install the text form."""

from __future__ import annotations

import io
import json
import logging
import uuid

from aws_lambda_powertools import Logger

from funcmart_hosts.local.logformat import HumanFormatter, install


def powertools_logger(stream: io.StringIO, service: str) -> Logger:
    logger = Logger(service=service, logger_handler=logging.StreamHandler(stream))
    # Thread-local keys belong to the thread, not the logger: start without another test's.
    logger.thread_safe_clear_keys()
    return logger


def test_a_record_becomes_one_line_with_its_keys() -> None:
    buf = io.StringIO()
    logger = powertools_logger(buf, f"svc-{uuid.uuid4().hex[:6]}")
    handler = logger.registered_handler
    handler.setFormatter(HumanFormatter(handler.formatter, stack_prefix="svc-"))
    # Keys appended after the wrap still reach the line (Powertools talks to the formatter).
    logger.append_keys(correlation_id="corr-1")
    logger.warning("stock low", extra={"product_id": "p-1", "left": 2, "note": "two words"})
    line = buf.getvalue().strip()
    assert "\n" not in line
    head, _, rest = line.partition("  ")
    assert head.split()[1] == "WARNING"
    assert "stock low" in rest
    assert "product_id=p-1" in line
    assert "left=2" in line
    assert 'note="two words"' in line
    assert "correlation_id=corr-1" in line
    assert "location=" not in line  # noise on a laptop


def test_an_exception_follows_its_line() -> None:
    buf = io.StringIO()
    logger = powertools_logger(buf, f"svc-{uuid.uuid4().hex[:6]}")
    handler = logger.registered_handler
    handler.setFormatter(HumanFormatter(handler.formatter))
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    first, *rest = buf.getvalue().strip().splitlines()
    assert "ERROR" in first
    assert "it failed" in first
    assert rest[0].startswith("Traceback")
    assert rest[-1] == "ValueError: boom"


def test_without_install_the_functions_log_json_as_on_lambda() -> None:
    buf = io.StringIO()
    logger = powertools_logger(buf, f"svc-{uuid.uuid4().hex[:6]}")
    logger.info("plain", extra={"k": "v"})
    record = json.loads(buf.getvalue())
    assert record["message"] == "plain"
    assert record["k"] == "v"


def test_install_wraps_only_the_functions_loggers_and_only_once() -> None:
    name = f"fm{uuid.uuid4().hex[:6]}"
    buf, other_buf = io.StringIO(), io.StringIO()
    ours = Logger(service=name, logger_handler=logging.StreamHandler(buf))
    other = Logger(
        service=f"other-{uuid.uuid4().hex[:6]}", logger_handler=logging.StreamHandler(other_buf)
    )
    assert install(root=name) == 1
    assert install(root=name) == 0  # idempotent: no formatter wrapped twice
    assert isinstance(ours.registered_handler.formatter, HumanFormatter)
    assert not isinstance(ours.registered_handler.formatter.inner, HumanFormatter)
    ours.info("hello")
    other.info("hello")
    assert not buf.getvalue().startswith("{")
    assert json.loads(other_buf.getvalue())["message"] == "hello"
