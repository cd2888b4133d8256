"""Neither SQL backend imports the other: what both need lives in a backend-neutral module of `stores/`.

Read with `ast` (nothing is imported), every import statement counted, those under
`if TYPE_CHECKING:` and relative ones too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STORES = Path(__file__).resolve().parents[2] / "remediator" / "stores"
BACKENDS = ("sqlite", "postgres")


def imported(source: str, package: str) -> set[str]:
    """Every module a module of `package` (e.g. remediator.stores.sqlite) names in an import."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found |= {module} | {f"{module}.{a.name}" for a in node.names}
    return found


def foreign_imports(backend: str) -> list[str]:
    """`path: module` for each import of another backend in `backend`'s package."""
    others = [f"remediator.stores.{b}" for b in BACKENDS if b != backend]
    package = f"remediator.stores.{backend}"
    return [f"{path.name}: {module}" for path in sorted((STORES / backend).rglob("*.py"))
            for module in sorted(imported(path.read_text(), package))
            if any(module == o or module.startswith(o + ".") for o in others)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_backend_imports_nothing_of_the_other(backend: str) -> None:
    assert foreign_imports(backend) == []


@pytest.mark.parametrize("source", [
    "from remediator.stores.sqlite.recovery import unknown_audit",
    "import remediator.stores.sqlite.retention",
    "from remediator.stores.sqlite import retention",
    "from ..sqlite import retention",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from remediator.stores.sqlite.store import SqliteStore",
])
def test_the_check_sees_every_spelling_of_an_import(source: str) -> None:
    found = imported(source, "remediator.stores.postgres")
    assert any(m.startswith("remediator.stores.sqlite") for m in found), found
