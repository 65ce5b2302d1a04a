"""Third-party packages whose `__init__` loads far more than a function uses, imported so that
a cold start pays only for the submodules it needs.

Python runs a package's `__init__` before any of its submodules, and two of ours import a
great deal there that no function uses:

- `redis` imports `redis.asyncio` (the asyncio client, its cluster client and a copy of every
  command), `redis.cluster` and `redis.sentinel` first, although the sync client lives in
  `redis.client`; and `redis.commands.core` imports `redis.asyncio.observability`, whose
  package `__init__` is the asyncio client again; and `redis.commands` loads the cluster
  client's commands beside the ones `redis.client` is made of;
- `aws_lambda_powertools.event_handler` imports every resolver Powertools has (AppSync and
  AppSync Events, Bedrock agents, VPC Lattice, Lambda function URLs, ...), although an HTTP
  function uses the API Gateway one from `event_handler.api_gateway`;
- `aws_lambda_powertools.utilities.data_classes` imports a class for every event source
  Lambda has (thirty-odd modules: S3, Kinesis, Cognito, CodePipeline, ...), although
  `event_handler.api_gateway` reads seven names from it and a queue function uses the SQS
  record.

`defer_package_inits` registers each such package without running its `__init__`: the
package object is in `sys.modules` with its path, so its submodules import as usual, and a
name the `__init__` would have defined is looked up on first use (PEP 562 `__getattr__`):
from the submodule `EXPORTS` says defines it, or by running the whole `__init__` then, for
any other name. Code that imports the package itself (`import redis; redis.Sentinel`, the
asyncio client) gets exactly what it got before, one attribute access later. A package
imported before this runs is left as it is.

A submodule that imports a name (not a submodule) from its own package while it loads, as
Powertools' `openapi.params` imports `Response`, needs that name in `EXPORTS`: running the
whole `__init__` halfway through that submodule's import would be a circular import.
tests/platforms/test_cold_imports.py checks the functions' cold starts and every name here.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # importlib.abc loads importlib.resources, which no function uses
    from importlib.abc import Loader

# Each deferred package, and the names the functions read from it by the submodule defining
# them (the same objects its `__init__` re-exports). Any other name runs the `__init__`.
EXPORTS: dict[str, dict[str, str]] = {
    "redis": {
        "Redis": "redis.client",
        "StrictRedis": "redis.client",
        "ConnectionError": "redis.exceptions",
        "RedisError": "redis.exceptions",
        "ResponseError": "redis.exceptions",
        "TimeoutError": "redis.exceptions",
    },
    "redis.asyncio": {},
    # What the clients import from it; its `__init__` would also load the cluster client's
    # commands (`redis.commands.cluster`), which no function uses.
    "redis.commands": {
        name: f"redis.commands.{module}"
        for module, names in {
            "core": ("CoreCommands", "AsyncCoreCommands"),
            "helpers": ("list_or_args",),
            "redismodules": ("RedisModuleCommands", "AsyncRedisModuleCommands"),
            "sentinel": ("SentinelCommands", "AsyncSentinelCommands"),
        }.items()
        for name in names
    },
    "aws_lambda_powertools.event_handler": {
        "APIGatewayHttpResolver": "aws_lambda_powertools.event_handler.api_gateway",
        "ApiGatewayResolver": "aws_lambda_powertools.event_handler.api_gateway",
        "Response": "aws_lambda_powertools.event_handler.api_gateway",
    },
    # What `event_handler.api_gateway` imports from it, and `sqs_event` (S3Event) as it loads.
    "aws_lambda_powertools.utilities.data_classes": {
        name: f"aws_lambda_powertools.utilities.data_classes.{module}"
        for module, names in {
            "alb_event": ("ALBEvent",),
            "api_gateway_proxy_event": ("APIGatewayProxyEvent", "APIGatewayProxyEventV2"),
            "bedrock_agent_event": ("BedrockAgentEvent",),
            "lambda_function_url_event": ("LambdaFunctionUrlEvent",),
            "vpc_lattice": ("VPCLatticeEvent", "VPCLatticeEventV2"),
            "s3_event": ("S3Event",),
            "sqs_event": ("SQSEvent", "SQSRecord"),
        }.items()
        for name in names
    },
}


def defer_package_inits(exports: Mapping[str, Mapping[str, str]] = EXPORTS) -> list[str]:
    """Register each package of `exports` (parents first) without running its `__init__`;
    returns those registered now (a package already imported, or not installed, is skipped)."""
    done = []
    for name, names in exports.items():
        if name not in sys.modules and _register(name, dict(names)):
            done.append(name)
    return done


def _register(name: str, names: dict[str, str]) -> bool:
    try:
        spec = importlib.util.find_spec(name)
    except ImportError:  # a parent that is not installed
        return False
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)
    module.__dict__["__getattr__"] = _DeferredInit(module, spec.loader, names)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return True


class _DeferredInit:
    """A deferred package's `__getattr__`: a name from the submodule defining it, a submodule
    imported, or else the package's `__init__` run (once, under a lock) and the name read."""

    def __init__(self, module: ModuleType, loader: Loader, names: dict[str, str]) -> None:
        self._module = module
        self._loader = loader
        self._names = names
        self._lock = threading.RLock()
        self._running = False

    def __call__(self, attr: str) -> Any:
        name = self._module.__name__
        submodule = self._names.get(attr)
        if submodule is not None:
            return getattr(importlib.import_module(submodule), attr)
        if not attr.startswith("__") and _is_submodule(f"{name}.{attr}"):
            # `from redis import _himport_exec`: a submodule, imported as it would be anyway.
            return importlib.import_module(f"{name}.{attr}")
        namespace = self._module.__dict__
        with self._lock:
            if self._running:
                # The `__init__` itself, asking for a submodule it imports next.
                raise AttributeError(f"module {name!r} has no attribute {attr!r}")
            if namespace.get("__getattr__") is self:
                self._run_init()
        if attr in namespace:
            return namespace[attr]
        own = namespace.get("__getattr__")  # the package's own hook, if it has one
        if own is not None:
            return own(attr)
        raise AttributeError(f"module {name!r} has no attribute {attr!r}")

    def _run_init(self) -> None:
        namespace = self._module.__dict__
        self._running = True
        del namespace["__getattr__"]
        try:
            self._loader.exec_module(self._module)
        except BaseException:
            namespace.setdefault("__getattr__", self)
            raise
        finally:
            self._running = False


def _is_submodule(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False
