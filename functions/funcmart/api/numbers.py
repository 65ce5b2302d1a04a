"""Numbers as JSON Schema reads them: an "integer" is any number whose fractional part is
zero, so `52.0` is one (JSON Schema 2020-12, Validation 6.1.1). Pydantic's StrictInt refuses
it; `Annotated[StrictInt, Field(...), WHOLE]` takes it (as the int 52) and still refuses 52.5,
"52" and true. (WHOLE goes after the Field, so that its bounds stay in the JSON schema.)"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole)
