"""Loaded functions and the one way to invoke them: as Lambda would, with a fresh context.

Concurrency. Lambda runs concurrent requests on concurrent instances; locally every function
has one warm instance in this process, shared by the gateway's request threads and the
pollers, and invocations run concurrently, as they would on Lambda. That is safe because the
functions keep no request state on modules or classes: `HttpFunction` holds the request in a
context variable and each queue batch gets its own processor (`funcmart.entrypoints`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from funcmart_hosts.gateway.context import LambdaContext
from funcmart_hosts.gateway.loader import Handler, load_handler
from funcmart_hosts.gateway.template import Function
from funcmart_hosts.local.resources import Deployment

# Not under "funcmart": Powertools filters every record whose logger name contains its
# service name ("funcmart") out of the root handlers, where these lines belong.
log = logging.getLogger("local-platform")


@dataclass
class LoadedFunction:
    """One function's warm instance. `handler` is imported on first use (its cold start)
    when the function was made with `load` instead, as Lambda starts an instance on the
    first event; `ensure_loaded()` does it ahead of time."""

    spec: Function
    name: str  # the local function name (AWS_LAMBDA_FUNCTION_NAME)
    arn: str
    env: dict[str, str]
    handler: Handler | None = None
    load: Callable[[], Handler] | None = None
    _load_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id

    def ensure_loaded(self) -> Handler:
        with self._load_lock:
            if self.handler is None:
                if self.load is None:
                    raise RuntimeError(f"{self.logical_id} has neither a handler nor a loader")
                started = time.monotonic()
                self.handler = self.load()
                log.debug(
                    "loaded %s (%s) in %.0f ms",
                    self.logical_id,
                    self.spec.handler,
                    (time.monotonic() - started) * 1000,
                )
            return self.handler


class Invoker:
    def __init__(self, functions: Mapping[str, LoadedFunction]) -> None:
        self.functions = dict(functions)

    def __contains__(self, logical_id: object) -> bool:
        return logical_id in self.functions

    def invoke(
        self,
        logical_id: str,
        event: dict[str, Any],
        *,
        request_id: str | None = None,
    ) -> Any:
        """Run the function's handler on `event` with a fresh context; exceptions propagate."""
        fn = self.functions[logical_id]
        context = LambdaContext(fn.name, fn.spec.memory_size, fn.spec.timeout, fn.arn, request_id)
        handler = fn.ensure_loaded()
        started = time.monotonic()
        try:
            return handler(event, context)
        finally:
            elapsed = time.monotonic() - started
            if elapsed > fn.spec.timeout:
                log.warning(
                    "%s ran %.1fs, over its Timeout of %ss: Lambda would have stopped it",
                    logical_id,
                    elapsed,
                    fn.spec.timeout,
                )


def load_functions(
    deployment: Deployment,
    logical_ids: Iterable[str],
    after_load: Callable[[], None] | None = None,
) -> dict[str, LoadedFunction]:
    """Each function, to be imported with its own environment in place (its cold start) on
    first use or by `warm_up`; `after_load` runs after each cold start."""
    out = {}
    base = deployment.settings.template_path.parent
    for lid in logical_ids:
        spec = deployment.tpl.functions[lid]
        env = deployment.function_env(spec)
        name = deployment.name(lid)
        out[lid] = LoadedFunction(
            spec=spec,
            name=name,
            arn=deployment.arn("lambda", f"function:{name}"),
            env=env,
            load=functools.partial(_load, spec, env, base, after_load),
        )
    return out


def _load(
    spec: Function, env: dict[str, str], base: Path, after_load: Callable[[], None] | None
) -> Handler:
    handler = load_handler(spec, env, base)
    if after_load is not None:
        after_load()
    return handler


def warm_up(functions: Iterable[LoadedFunction]) -> list[str]:
    """Cold-start every function now, so that the first events find them warm; a function
    that fails to load is logged with its traceback (its invocations fail the same way).
    Returns the logical ids that failed."""
    failed = []
    for fn in functions:
        try:
            fn.ensure_loaded()
        except Exception:
            log.exception("%s (%s) failed to load", fn.logical_id, fn.spec.handler)
            failed.append(fn.logical_id)
    return failed
