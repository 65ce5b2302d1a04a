"""Who is calling: the claims the edge verified, reduced to what the services authorize on."""

from __future__ import annotations

from dataclasses import dataclass

from funcmart.domain.errors import Forbidden, Unauthorized

ADMIN_GROUP = "admin"


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
