"""Request bodies as the HTTP side takes them: media types per RFC 9110, text exactly as sent.

- `parse_media_type` is the one parser of a `Content-Type` value (RFC 9110, 8.3.1):
  `type "/" subtype *( OWS ";" OWS parameter )`, type, subtype and parameter names
  case-insensitive, a parameter's value a token or a quoted string.
- `json_body_problem` is the one policy for which types a route that takes JSON accepts:
  `application/json` and any `application/*+json` (RFC 6839), with no charset or
  `charset=utf-8` (RFC 8259, 8.1: JSON exchanged between systems is UTF-8). Anything else
  is 415. A body without a Content-Type is read as JSON, as API Gateway passes it.
- `strict_json_loads` parses a body as RFC 8259 JSON and refuses what Python's parser would
  let through: an object naming one key twice (two parsers reading one body differently is
  how a check is bypassed: the last value would silently win), the non-JSON constants
  NaN and Infinity, and a string escaping half of a surrogate pair (`"\\ud800"`), which is
  no Unicode text and could not be stored.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

# RFC 9110, 5.6.2: token = 1*tchar
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_TYPE = re.compile(rf"[ \t]*({_TOKEN})/({_TOKEN})[ \t]*")
_PARAMETER = re.compile(
    rf';[ \t]*(?:({_TOKEN})=(?:({_TOKEN})|"((?:[^"\\]|\\.)*)"))?[ \t]*', re.DOTALL
)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


@dataclass(frozen=True)
class MediaType:
    type: str  # lower case
    subtype: str  # lower case
    parameters: dict[str, str] = field(default_factory=dict)  # names lower case

    @property
    def essence(self) -> str:
        return f"{self.type}/{self.subtype}"

    @property
    def charset(self) -> str | None:
        value = self.parameters.get("charset")
        return value.lower() if value is not None else None

    def is_json(self) -> bool:
        return self.type == "application" and (
            self.subtype == "json" or self.subtype.endswith("+json")
        )


def parse_media_type(value: str) -> MediaType | None:
    """The media type a Content-Type value names; None when it is not one (RFC 9110)."""
    head = _TYPE.match(value)
    if head is None:
        return None
    parameters: dict[str, str] = {}
    pos = head.end()
    while pos < len(value):
        param = _PARAMETER.match(value, pos)
        if param is None or param.end() == pos:
            return None
        name, token, quoted = param.groups()
        if name is not None:
            text = token if token is not None else _QUOTED_PAIR.sub(r"\1", quoted)
            parameters.setdefault(name.lower(), text)
        pos = param.end()
    return MediaType(head.group(1).lower(), head.group(2).lower(), parameters)


JSON_TYPES = "application/json or application/*+json, in UTF-8"


def json_body_problem(content_type: str | None) -> str | None:
    """Why a JSON route refuses a body sent with this Content-Type (a 415); None when it
    takes it."""
    if content_type is None:
        return None
    media = parse_media_type(content_type)
    if media is None:
        return f"the Content-Type {content_type[:100]!r} is not a media type; send {JSON_TYPES}"
    if not media.is_json():
        return f"send {JSON_TYPES}, not {media.essence[:100]}"
    if media.charset not in (None, "utf-8"):
        return f"send JSON in UTF-8 (charset=utf-8 or none), not charset={media.charset[:40]}"
    return None


class DuplicateKeyError(json.JSONDecodeError):
    """An object in the body names one key twice."""


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"an object names the key {key[:100]!r} twice", "", 0)
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not a JSON number", "", 0)


# A \uD800-\uDFFF escape: only then can a parsed string hold a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def strict_json_loads(text: str | bytes) -> Any:
    """`json.loads` for RFC 8259 JSON only: duplicate keys, NaN/Infinity and lone surrogates
    raise json.JSONDecodeError (a ValueError), as any other malformed body."""
    data = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant)
    source = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if _SURROGATE_ESCAPE.search(source):
        try:
            json.dumps(data, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise json.JSONDecodeError(
                "a string escapes half of a surrogate pair, which is not Unicode text", "", 0
            ) from None
    return data
