"""Imports every module of the function package and the hosts, and compiles every handler:
the cheap part of "this Python still runs funcmart" (`make test-pythons`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

from funcmart_hosts.gateway.template import ROOT

PACKAGES = ("funcmart", "funcmart_hosts")


def main() -> int:
    count = 0
    for name in PACKAGES:
        package = importlib.import_module(name)
        count += 1
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if info.name.endswith("__main__"):
                continue  # running it is its only use
            importlib.import_module(info.name)
            count += 1
    # The handler modules: compiled in memory (no __pycache__ left in the Lambda code).
    handlers = sorted((ROOT / "functions").glob("*.py"))
    for path in handlers:
        compile(path.read_text(), str(path), "exec")
    version = sys.version.split()[0]
    print(f"Python {version}: imported {count} modules, compiled {len(handlers)} handlers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
