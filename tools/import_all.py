"""Imports every module of the function package and the hosts, and compiles every handler:
the cheap part of "this Python still runs funcmart" (`make test-pythons`)."""

from __future__ import annotations

import compileall
import importlib
import pkgutil
import sys

from funcmart.platforms.local.template import ROOT

PACKAGES = ("funcmart",)


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
    if not compileall.compile_dir(ROOT / "functions", quiet=1, legacy=False):
        return 1
    print(f"Python {sys.version.split()[0]}: imported {count} modules, compiled functions/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
