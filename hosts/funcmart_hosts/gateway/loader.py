"""Loads a function's handler the way the Lambda runtime does: from its code directory,
with the function's own environment in place while the module initialises (cold start)."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from funcmart_hosts.gateway.template import ROOT, Function

Handler = Callable[[dict[str, Any], Any], Any]
_env_lock = threading.RLock()


@contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a cold start, then restore them."""
    with _env_lock:
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def load_handler(fn: Function, env: Mapping[str, str], base: Path = ROOT) -> Handler:
    """Import `fn`'s module afresh under its environment and return its handler.

    `base` is the template's folder: CodeUri is relative to it, as in SAM."""
    path = base / fn.code_uri / (fn.module.replace(".", "/") + ".py")
    name = f"funcmart_fn_{fn.logical_id}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {fn.handler} from {path}")
    module = importlib.util.module_from_spec(spec)
    with environment(env):
        sys.modules[name] = module
        spec.loader.exec_module(module)
    handler: Handler = getattr(module, fn.attribute)
    return handler
