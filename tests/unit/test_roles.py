"""Roles come from exact group names: no group whose name merely contains "admin", or that
splits into "admin", makes its member an admin."""

from __future__ import annotations

import pytest

from funcmart.entrypoints.http import parse_groups, principal_from_claims


@pytest.mark.parametrize(
    "groups",
    [
        ["Store admin"],
        ["billing,admin"],
        ["billing;admin"],
        ['"admin"'],
        ["[admin]"],
        ["admin\t"],
        ["administrators"],
        "[billing,admin]",
        '["admin"]',
        "Store admin",
        "billing,admin",
        ["", "admins"],
        [{"name": "admin"}],
    ],
)
def test_a_group_that_only_contains_admin_is_not_admin(groups):
    principal = principal_from_claims({"sub": "mallory", "groups": groups})
    assert principal is not None
    assert not principal.is_admin


@pytest.mark.parametrize(
    "groups", [["admin"], ["billing", "admin"], "[billing admin]", "[admin]", "admin"]
)
def test_admin_is_an_exact_member_of_the_group_list(groups):
    principal = principal_from_claims({"sub": "ops", "cognito:groups": groups})
    assert principal is not None
    assert principal.is_admin


def test_names_with_separators_are_ignored_and_the_others_kept():
    assert parse_groups(["Store admin", "billing", "a,b"]) == frozenset({"billing"})
    assert parse_groups("[billing support,admin]") == frozenset({"billing"})
