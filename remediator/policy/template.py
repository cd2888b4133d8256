"""Parameter templates: `{labels.instance}` and friends, filled from the alert.

Allowed references: `labels.<name>`, `annotations.<name>`, `alert.name`, `alert.source`,
`alert.status`, `alert.fingerprint`, `incident.id`, `policy.name`. `{{` and `}}` are literal
braces. A value that is exactly one reference keeps the referenced text as is; the action's
`Params` model then validates it into its type (IP network, ARN, identifier, duration...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from remediator.errors import TemplateError

REFERENCE = re.compile(r"\{\{|\}\}|\{([a-z]+)\.([A-Za-z0-9_.\-/]+)\}")
SCALAR_FIELDS = {
    "alert": {"name", "source", "status", "fingerprint"},
    "incident": {"id"},
    "policy": {"name"},
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


def render(value: Any, scope: Mapping[str, Mapping[str, str]]) -> Any:
    """Fill every reference from `scope` ({"labels": {...}, "alert": {...}, ...})."""
    if isinstance(value, str):
        return _render_str(value, scope) if "{" in value or "}" in value else value
    if isinstance(value, Mapping):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render(v, scope) for v in value]
    return value


def _render_str(value: str, scope: Mapping[str, Mapping[str, str]]) -> str:
    def fill(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group(0)[0]
        scope_name, name = m.group(1), m.group(2)
        try:
            return scope[scope_name][name]
        except KeyError:
            raise TemplateError(f"{{{scope_name}.{name}}}: the alert has no such value") from None

    references(value)
    return REFERENCE.sub(fill, value)
