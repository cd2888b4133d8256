"""Every method of the store contract is one remediator calls: nothing in it exists only for tests.

A method tests want that the daemon does not call belongs in tests/support (store_calls.py), not
in the protocol every backend must implement. Read with `ast`: a method counts as used when some
module of `remediator/` outside the backends' own packages names it as an attribute (a call, or a
method passed along). A name shared with an unrelated method (`open`) can hide a test-only one;
it can never make this test fail wrongly.
"""

from __future__ import annotations

import ast
import functools
import inspect
from pathlib import Path

import pytest

from remediator.stores.base import Store

PACKAGE = Path(__file__).resolve().parents[2] / "remediator"
BACKENDS = (PACKAGE / "stores" / "sqlite", PACKAGE / "stores" / "postgres")


def contract_methods() -> list[str]:
    """The methods of `Store` and of every part it is composed of."""
    return sorted({name for part in Store.__mro__ if part.__module__.startswith("remediator.")
                   for name, member in vars(part).items()
                   if inspect.iscoroutinefunction(member) or inspect.isfunction(member)
                   if not name.startswith("_")})


@functools.cache
def attributes_named(root: Path, skip: tuple[Path, ...]) -> set[str]:
    found: set[str] = set()
    for path in root.rglob("*.py"):
        if any(path.is_relative_to(s) for s in skip):
            continue
        found |= {n.attr for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Attribute)}
    return found


def test_the_contract_has_the_parts_it_is_composed_of() -> None:
    methods = contract_methods()
    assert {"record_alerts", "claim_requests", "record_vote", "schedule_timer", "record_waf_block",
            "delete_expired"} <= set(methods)


@pytest.mark.parametrize("method", contract_methods())
def test_remediator_calls_each_contract_method(method: str) -> None:
    assert method in attributes_named(PACKAGE, BACKENDS), f"only tests use Store.{method}"
