"""Lambda SnapStart: what one snapshot, restored into many execution environments, must not
reuse.

With SnapStart (template.yaml, docs/deploy.md) Lambda runs the cold start once, when a version
is published, snapshots the initialised process and restores that snapshot for every new
execution environment. Whatever the cold start made that is unique or bound to a connection is
then shared by every restored copy:

- pooled connections (Redis, the botocore clients' HTTP pools): their sockets belong to the
  process that was snapshotted; a restored copy must open its own;
- the `random` module's state: every copy would draw the same numbers (retry jitter);
- monotonic deadlines (the Redis breaker's), which mean nothing in another environment.

uuid4 and `secrets` read the kernel's entropy on each call and need nothing. botocore's
credentials need nothing either: refreshable credentials (the container provider SnapStart
functions get) are fetched again before they expire, static ones do not expire.

The runtime hooks come from `snapshot_restore_py`, which only the Lambda runtime provides:
elsewhere `register` does nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def register(before_snapshot: Callable[[], None], after_restore: Callable[[], None]) -> bool:
    """Register the runtime hooks where the Lambda runtime offers them; False elsewhere."""
    try:
        from snapshot_restore_py import (  # type: ignore[import-not-found, unused-ignore]
            register_after_restore,
            register_before_snapshot,
        )
    except ImportError:
        return False
    register_before_snapshot(before_snapshot)
    register_after_restore(after_restore)
    return True


def drop_botocore_connections(client: Any) -> None:
    """Close a botocore client's pooled HTTP connections; the next call opens new ones."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    close = getattr(session, "close", None)
    if close is not None:
        close()


def drop_redis_connections(client: Any) -> None:
    """Close every connection of a Redis client's pool; the next command opens a new one."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        try:
            pool.disconnect()
        except OSError as exc:  # a socket the restored process never had
            log.debug("redis pool disconnect after restore: %s", exc)


def reseed_random() -> None:
    """A fresh seed for `random` from the kernel's entropy."""
    random.seed()
