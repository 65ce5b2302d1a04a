"""Loaded functions and the one way to invoke them: as Lambda would, one event at a time.

Concurrency. On Lambda each instance handles one event at a time; locally every function has
one warm instance in this process, shared by the gateway's request threads and the pollers.
Two rules keep that correct:

- one invocation at a time per function (Lambda's rule for an instance; Powertools'
  BatchProcessor and resolver keep per-invocation state on module-level objects);
- one HTTP invocation at a time in the whole process, because the Powertools event handler
  keeps the current event in class-level state (`BaseRouter.current_event`): two resolvers
  running at once, even of different functions, could read each other's request, claims
  included.

The gateway still accepts, reads and answers connections concurrently, and queue pollers
and schedules run beside HTTP traffic; only the handler calls themselves are serialized as
above. That is plenty for a laptop and keeps every answer right.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from funcmart.platforms.edge import LambdaContext
from funcmart.platforms.local.loader import Handler, load_handler
from funcmart.platforms.local.resources import Deployment
from funcmart.platforms.local.template import Function

# Not under "funcmart": Powertools filters every record whose logger name contains its
# service name ("funcmart") out of the root handlers, where these lines belong.
log = logging.getLogger("local-platform")


@dataclass
class LoadedFunction:
    spec: Function
    name: str  # the local function name (AWS_LAMBDA_FUNCTION_NAME)
    arn: str
    env: dict[str, str]
    handler: Handler
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id


class Invoker:
    def __init__(self, functions: Mapping[str, LoadedFunction]) -> None:
        self.functions = dict(functions)
        self._http_lock = threading.Lock()

    def __contains__(self, logical_id: object) -> bool:
        return logical_id in self.functions

    def invoke(
        self,
        logical_id: str,
        event: dict[str, Any],
        *,
        http: bool = False,
        request_id: str | None = None,
    ) -> Any:
        """Run the function's handler on `event` with a fresh context; exceptions propagate."""
        fn = self.functions[logical_id]
        context = LambdaContext(fn.name, fn.spec.memory_size, fn.spec.timeout, fn.arn, request_id)
        outer = self._http_lock if http else _NO_LOCK
        with outer, fn.lock:
            started = time.monotonic()
            try:
                return fn.handler(event, context)
            finally:
                elapsed = time.monotonic() - started
                if elapsed > fn.spec.timeout:
                    log.warning(
                        "%s ran %.1fs, over its Timeout of %ss: Lambda would have stopped it",
                        logical_id,
                        elapsed,
                        fn.spec.timeout,
                    )


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_LOCK = _NoLock()


def load_functions(deployment: Deployment, logical_ids: Iterable[str]) -> dict[str, LoadedFunction]:
    """Import each function's handler with its own environment in place (its cold start)."""
    out = {}
    for lid in logical_ids:
        spec = deployment.tpl.functions[lid]
        env = deployment.function_env(spec)
        name = deployment.name(lid)
        started = time.monotonic()
        handler = load_handler(spec, env, deployment.settings.template_path.parent)
        log.debug(
            "loaded %s (%s) in %.0f ms", lid, spec.handler, (time.monotonic() - started) * 1000
        )
        out[lid] = LoadedFunction(
            spec=spec,
            name=name,
            arn=deployment.arn("lambda", f"function:{name}"),
            env=env,
            handler=handler,
        )
    return out
