"""Parameter templates: `{labels.instance}` and friends, filled from the alert.

Allowed references: `labels.<name>`, `annotations.<name>`, `alert.name`, `alert.source`,
`alert.status`, `alert.fingerprint`, `incident.id`, `policy.name`, and in a step with `when`
`previous.action`, `previous.target`, `previous.outcome`, `previous.reason` (the step it waited
for: what it was, what became of it and why). `{{` and `}}` are literal
braces. A value that is exactly one reference keeps the referenced text as is; the action's
`Params` model then validates it into its type (IP network, ARN, identifier, duration...).
Parameters people read (`PeopleText`) are filled from `one_line_scope`: there, every value from
the alert is one line without terminal controls.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from typing import Any

from remediator.errors import TemplateError
from remediator.plaintext import one_line

REFERENCE = re.compile(r"\{\{|\}\}|\{([a-z]+)\.([A-Za-z0-9_.\-/]+)\}")
SCALAR_FIELDS = {
    "alert": {"name", "source", "status", "fingerprint"},
    "incident": {"id"},
    "policy": {"name"},
    # The step this one waited for (`when`): its action, target, outcome and why.
    "previous": {"action", "target", "outcome", "reason"},
}
MAPPING_FIELDS = {"labels", "annotations"}


def references(value: str) -> list[tuple[str, str]]:
    """The references in a string, raising TemplateError for an unknown one or a stray brace."""
    found: list[tuple[str, str]] = []
    rest = REFERENCE.sub(lambda m: _collect(m, found), value)
    if "{" in rest or "}" in rest:
        raise TemplateError(f"{value!r}: unbalanced brace or unknown reference (use {{{{ for a literal brace)")
    return found


def _collect(m: re.Match[str], found: list[tuple[str, str]]) -> str:
    if m.group(1) is None:
        return ""
    scope, name = m.group(1), m.group(2)
    if scope not in MAPPING_FIELDS and name not in SCALAR_FIELDS.get(scope, ()):
        known = sorted(MAPPING_FIELDS | set(SCALAR_FIELDS))
        raise TemplateError(f"{{{scope}.{name}}} is not a known reference (scopes: {', '.join(known)})")
    found.append((scope, name))
    return ""


def is_template(value: Any) -> bool:
    """Whether a parameter value (or anything nested in it) holds a reference."""
    if isinstance(value, str):
        return "{" in value
    if isinstance(value, Mapping):
        return any(is_template(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(is_template(v) for v in value)
    return False


def uses_previous(value: Any) -> bool:
    """Whether a parameter value refers to the previous step (`{previous.*}`)."""
    if isinstance(value, str):
        try:
            return any(scope == "previous" for scope, _ in references(value))
        except TemplateError:
            return False  # reported by `check`
    if isinstance(value, Mapping):
        return any(uses_previous(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(uses_previous(v) for v in value)
    return False


def check(value: Any) -> None:
    """Validate every template in a parameter value without filling it (policy load time)."""
    if isinstance(value, str):
        references(value)
    elif isinstance(value, Mapping):
        for item in value.values():
            check(item)
    elif isinstance(value, list | tuple):
        for item in value:
            check(item)


class _OneLineValues(Mapping[str, str]):
    """A scope's values (labels, annotations ...), each as `one_line` shows it, made when read."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> str:
        return one_line(self._values[name])

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def one_line_scope(scope: Mapping[str, Mapping[str, str]]) -> dict[str, Mapping[str, str]]:
    """`scope` with every value on one line and without terminal controls (`plaintext.one_line`)."""
    return {name: _OneLineValues(values) for name, values in scope.items()}


def render(value: Any, scope: Mapping[str, Mapping[str, str]]) -> Any:
    """Fill every reference from `scope` ({"labels": {...}, "alert": {...}, ...})."""
    if isinstance(value, str):
        return _render_str(value, scope) if "{" in value or "}" in value else value
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope) for v in value]
    return value


@functools.lru_cache(maxsize=4096)
def _segments(value: str) -> tuple[str | tuple[str, str], ...]:
    """A template split into literal text and (scope, name) references, parsed once per text."""
    references(value)  # raises for an unknown reference or a stray brace
    parts: list[str | tuple[str, str]] = []
    position = 0
    for m in REFERENCE.finditer(value):
        parts.append(value[position:m.start()])
        parts.append(m.group(0)[0] if m.group(1) is None else (m.group(1), m.group(2)))
        position = m.end()
    parts.append(value[position:])
    return tuple(p for p in parts if p != "")


def _render_str(value: str, scope: Mapping[str, Mapping[str, str]]) -> str:
    out = []
    for part in _segments(value):
        if isinstance(part, str):
            out.append(part)
            continue
        try:
            out.append(scope[part[0]][part[1]])
        except KeyError:
            raise TemplateError(f"{{{part[0]}.{part[1]}}}: the alert has no such value") from None
    return "".join(out)
