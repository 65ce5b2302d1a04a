"""funcmart: an e-commerce backend in which every endpoint and consumer is its own function."""

__version__ = "0.1.0"
