"""Who is calling: the claims the edge verified, reduced to what the services authorize on."""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.domain.errors import Forbidden, Unauthorized

ADMIN_GROUP = "admin"
# The claims that list a caller's groups (Cognito's, then the generic one).
GROUP_CLAIMS = ("cognito:groups", "groups")
# A group name is one token: none of these, which separate names in a flattened claim
# ("[a b]") or in the usual list spellings, may appear in it. A name with one is refused,
# so "Store admin" or "billing,admin" can never read as "admin".
_SEPARATORS = frozenset(" \t\r\n\v\f,;[]\"'")


def is_group_name(name: object) -> bool:
    """Whether `name` is a group name we accept: a non-empty printable string without
    separators (whitespace, commas, semicolons, brackets, quotes)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 128
        and name.isprintable()
        and not any(c in _SEPARATORS or c.isspace() for c in name)
    )


@dataclass(frozen=True)
class Principal:
    subject: str
    groups: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_GROUP in self.groups

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("this operation needs the admin group")

    def may_see(self, owner: str) -> bool:
        return self.is_admin or owner == self.subject


def require(principal: Principal | None) -> Principal:
    if principal is None:
        raise Unauthorized("a bearer token is required")
    return principal
