"""funcmart: an e-commerce backend in which every endpoint and consumer is its own function."""

from funcmart.imports import defer_package_inits

__version__ = "0.1.0"

# Before any handler imports redis or Powertools' event handler (funcmart/imports.py).
defer_package_inits()
