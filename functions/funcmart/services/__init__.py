"""Use cases: one function each, over ports. No transport, no vendor."""
