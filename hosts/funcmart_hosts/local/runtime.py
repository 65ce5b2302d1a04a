"""Loaded functions and the one way to invoke them: as Lambda would, with a fresh context.

Concurrency. Lambda runs concurrent requests on concurrent instances; locally every function
has one warm instance in this process, shared by the gateway's request threads and the
pollers, and invocations run concurrently, as they would on Lambda. That is safe because the
functions keep no request state on modules or classes: `HttpFunction` holds the request in a
context variable and each queue batch gets its own processor (`funcmart.entrypoints`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    spec: Function
    name: str  # the local function name (AWS_LAMBDA_FUNCTION_NAME)
    arn: str
    env: dict[str, str]
    handler: Handler

    @property
    def logical_id(self) -> str:
        return self.spec.logical_id


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
