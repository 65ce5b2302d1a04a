"""Shim until the entry points move here (the house split): re-exports only."""
