"""What every cold start does first, before a handler module imports anything heavy
(`funcmart/__init__.py` runs `begin`, and every handler module imports funcmart first):

- `redis` and Powertools' `event_handler` are registered without their package `__init__`,
  so only the submodules a function uses load (funcmart/imports.py);
- on Lambda, the cyclic garbage collector is held off until the first invocation. What a cold
  start allocates (modules, classes, pydantic schemas, clients) lives as long as the process,
  so every collection during the imports walks a growing heap and frees next to nothing: with
  the collector on, they cost a PlaceOrder cold start a good part of its time. The first
  invocation moves all of it to the permanent generation (`gc.freeze`) and turns the
  collector back on for what requests allocate (observability.py); a SnapStart snapshot is
  taken after one full collection and a freeze (bootstrap.py). Elsewhere (the local
  platform, Knative, tests) nothing changes: a host that imports functions and serves for
  hours keeps its collector.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping


def on_lambda(environ: Mapping[str, str] | None = None) -> bool:
    """True inside the AWS Lambda runtime itself, not under SAM's or another emulator (they
    set AWS_SAM_LOCAL): the one answer to "are we on Lambda?"."""
    env = os.environ if environ is None else environ
    return bool(env.get("AWS_LAMBDA_FUNCTION_NAME")) and not env.get("AWS_SAM_LOCAL")


def begin() -> None:
    """The cold start's first steps (see the module's docstring)."""
    from funcmart.imports import defer_package_inits

    defer_package_inits()
    if on_lambda():
        gc.disable()


def end() -> None:
    """The cold start is over (Lambda only): what it built is frozen out of the collector's
    reach and the collector runs again. O(1); idempotent."""
    if on_lambda():
        gc.freeze()
        gc.enable()
