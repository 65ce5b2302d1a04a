"""funcmart: an e-commerce backend in which every endpoint and consumer is its own function."""

from funcmart import coldstart

__version__ = "0.1.0"

# Before any handler imports the rest: funcmart/coldstart.py.
coldstart.begin()
