"""One parser for Content-Type (RFC 9110, 8.3.1) and one policy for the JSON a route takes;
one strict JSON parser that refuses what RFC 8259 does not define (duplicate keys, NaN)."""

from __future__ import annotations

import json

import pytest

from funcmart.entrypoints.media import (
    MediaType,
    json_body_problem,
    parse_media_type,
    strict_json_loads,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", MediaType("application", "json")),
        ("Application/JSON", MediaType("application", "json")),
        (' text/html ;Charset="UTF-8"', MediaType("text", "html", {"charset": "UTF-8"})),
        ('a/b; x="q\\"t"; y=1', MediaType("a", "b", {"x": 'q"t', "y": "1"})),
        ("application/vnd.api+json;;", MediaType("application", "vnd.api+json")),
    ],
)
def test_media_types_parse_case_insensitively(value: str, expected: MediaType) -> None:
    assert parse_media_type(value) == expected


@pytest.mark.parametrize(
    "value", ["", "json", "application/", "/json", "a/b c", "a/b; x", 'a/b; x="open', "a/b; =1"]
)
def test_what_is_not_a_media_type_is_none(value: str) -> None:
    assert parse_media_type(value) is None


def test_the_charset_is_compared_case_insensitively() -> None:
    assert json_body_problem("application/json; charset=UTF-8") is None
    assert json_body_problem("application/json; charset=latin1") is not None
    assert json_body_problem(None) is None


def test_strict_json_refuses_duplicate_keys_at_any_depth_and_nan() -> None:
    assert strict_json_loads('{"a": {"b": 1}, "c": [{"d": 2}]}') == {"a": {"b": 1}, "c": [{"d": 2}]}
    assert strict_json_loads('["\\ud83d\\ude00"]') == ["\U0001f600"]  # a pair is one character
    for text in (
        '{"a": 1, "a": 1}',
        '{"x": [{"b": 1, "b": 2}]}',
        "[NaN]",
        '{"a": -Infinity}',
        '["\\ud800"]',
        '{"k": "\\udc00 alone"}',
    ):
        with pytest.raises(json.JSONDecodeError):
            strict_json_loads(text)
