"""Where one process runs several functions at once, each log line names its own work."""

from __future__ import annotations

import io
import json
import logging
import threading

from funcmart.observability import correlate, logger


def test_correlation_ids_do_not_leak_between_threads():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logger.registered_formatter)
    logging.getLogger("funcmart").addHandler(handler)
    barrier = threading.Barrier(3)

    def work(cid: str) -> None:
        correlate(cid)
        barrier.wait(timeout=5)  # all three have set their id before any of them logs
        logger.info("working", extra={"expect": cid})

    threads = [threading.Thread(target=work, args=(f"corr-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(timeout=5)
    finally:
        logging.getLogger("funcmart").removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line]
    assert len(lines) == 3
    assert all(line["correlation_id"] == line["expect"] for line in lines)
