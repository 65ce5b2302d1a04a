"""Shim until platforms/http.py moves here (the house split): re-exports only."""

from funcmart.platforms.http import HttpFunction, json_response

__all__ = ["HttpFunction", "json_response"]
