#!/usr/bin/env python3
"""The shape of the `remediator` package, from its source alone: the figures a newcomer feels.

Prints the modules directly in `remediator/` (`__init__.py` aside), the longest modules, import
cycles, and the longest chain of imports between `remediator` modules (every import statement
counts, those under `if TYPE_CHECKING:` too). Exits 1 when a figure passes its limit, so CI keeps
the layout honest. Nothing is imported or run: the modules are read with `ast`.

    python scripts/architecture.py [--json]
"""

from __future__ import annotations

import ast
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "remediator"
LIMITS = {"root_modules": 8, "module_lines": 450, "import_cycles": 0, "import_chain": 14}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The `remediator` modules one module imports (a name that is a submodule counts as it)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level and node.module in known:
            subs = {f"{node.module}.{a.name}" for a in node.names} & known.keys()
            found |= subs if subs and len(subs) == len(node.names) else {node.module, *subs}
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in edges:
        if node not in index:
            visit(node)
    return found


def longest_chain(edges: dict[str, set[str]]) -> list[str]:
    """The longest chain of imports, as the modules along it (the graph must have no cycle)."""

    @cache
    def chain(node: str) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for nxt in edges[node]:
            candidate = chain(nxt)
            if len(candidate) > len(best):
                best = candidate
        return (node, *best)

    longest: tuple[str, ...] = ()
    for node in edges:
        if len(chain(node)) > len(longest):
            longest = chain(node)
    return list(longest)


@dataclass(frozen=True)
class Figures:
    modules: int
    root: list[str]
    longest: list[tuple[int, str]]
    cycles: list[list[str]]
    chain: list[str]

    def measured(self) -> dict[str, int]:
        return {"root_modules": len(self.root), "module_lines": self.longest[0][0],
                "import_cycles": len(self.cycles), "import_chain": len(self.chain)}


def figures() -> Figures:
    edges = graph()
    known = modules()
    root = sorted(n for n, p in known.items() if p.parent == PACKAGE and p.name != "__init__.py")
    lines = sorted(((len(p.read_text().splitlines()), n) for n, p in known.items()), reverse=True)
    found = cycles(edges)
    return Figures(len(known), root, lines[:5], found, longest_chain(edges) if not found else [])


def main(argv: list[str]) -> int:
    found = figures()
    measured = found.measured()
    over = {key: value for key, value in measured.items() if value > LIMITS[key]}
    if "--json" in argv:
        print(json.dumps({"figures": measured, "limits": LIMITS, "over": over, "root": found.root,
                          "longest": found.longest, "cycles": found.cycles, "chain": found.chain}, indent=2))
    else:
        print(f"modules: {found.modules}")
        print(f"root modules: {len(found.root)} (limit {LIMITS['root_modules']}): {', '.join(found.root)}")
        print(f"longest modules (limit {LIMITS['module_lines']} lines): "
              + ", ".join(f"{name} ({count})" for count, name in found.longest))
        print(f"import cycles: {len(found.cycles)} {found.cycles or ''}")
        print(f"longest import chain: {len(found.chain)} modules (limit {LIMITS['import_chain']})")
        for name in found.chain:
            print(f"  {name}")
    for key, value in over.items():
        print(f"over the limit: {key} = {value} (limit {LIMITS[key]})", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
