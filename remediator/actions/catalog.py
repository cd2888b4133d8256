"""The registry described for people: `remediator actions` and the README's actions section.

Everything here is read from the action classes themselves (type name, risk, docstring,
`Params`, `permissions`), so the listing and the README cannot drift from the code: a test
regenerates the README section and fails when it differs.
"""

from __future__ import annotations

import ipaddress
import types
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from remediator.actions.base import AnyAction

README_START = "<!-- actions:start -->"
README_END = "<!-- actions:end -->"
README_COMMAND = "remediator actions --markdown --write-readme"

_NAMES: dict[Any, str] = {
    str: "str", int: "int", bool: "bool", float: "float", timedelta: "duration", datetime: "datetime",
    AwareDatetime: "datetime with zone",
    ipaddress.IPv4Network: "IPv4 network", ipaddress.IPv6Network: "IPv6 network",
}
_NETWORKS = {ipaddress.IPv4Network, ipaddress.IPv6Network}


@dataclass(frozen=True, slots=True)
class ParamDoc:
    """One parameter of an action as policy authors need to know it."""

    name: str
    type: str
    required: bool
    default: str  # how the default reads in a policy ("" for None: the value is optional)
    description: str

    @property
    def usage(self) -> str:
        if self.required:
            return "required"
        return f"default {self.default}" if self.default else "optional"


def summary(action: AnyAction) -> str:
    """What the action does: the first line of its class docstring."""
    lines = (type(action).__doc__ or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def type_label(annotation: Any) -> str:
    """A parameter's type in words: `str`, `duration`, `IP network`, `A / AAAA`, `list of str`."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_label(get_args(annotation)[0])
    if origin is Literal:
        return " / ".join(str(choice) for choice in get_args(annotation))
    if origin in (Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if set(members) == _NETWORKS:
            return "IP network"
        return " or ".join(type_label(m) for m in members)
    if origin is list:
        return "list of " + type_label(get_args(annotation)[0])
    if origin is dict:
        key, value = get_args(annotation)
        return f"map of {type_label(key)} to {type_label(value)}"
    return _NAMES.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _bounds(field: FieldInfo) -> str:
    # pydantic keeps `Field(ge=..., le=...)` as annotated_types.Ge / Le objects in the metadata.
    low = next((m.ge for m in field.metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in field.metadata if hasattr(m, "le")), None)
    if low is None and high is None:
        return ""
    return f" {'' if low is None else low}..{'' if high is None else high}"


def _default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"' if value == "" or value.isdigit() else value
    return str(value)


def param_docs(action: AnyAction) -> list[ParamDoc]:
    """The action's parameters in declaration order (required ones first, as policies read best)."""
    docs = [ParamDoc(name=field.alias or name, type=type_label(field.annotation) + _bounds(field),
                     required=field.is_required(), default="" if field.is_required() else _default(field.default),
                     description=field.description or "")
            for name, field in action.Params.model_fields.items()]
    return sorted(docs, key=lambda d: not d.required)


def listing(actions: Iterable[AnyAction]) -> str:
    """Every action for a terminal: type, risk, what it does, permissions, parameters."""
    out: list[str] = []
    for action in actions:
        out += [f"{action.type_name}  (risk: {action.risk.value})", f"  {summary(action)}",
                f"  permissions: {', '.join(action.permissions) or 'none (no AWS call)'}"]
        if action.follow_ups:
            out.append(f"  later runs: {', '.join(action.follow_ups)}")
        out.append("  parameters:")
        params = param_docs(action)
        width = max(len(p.name) for p in params)
        kinds = max(len(p.type) for p in params)
        for p in params:
            line = f"    {p.name:<{width}}  {p.type:<{kinds}}  {p.usage}"
            out.append(line + (f" — {p.description}" if p.description else ""))
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(actions: Iterable[AnyAction]) -> str:
    """The README's actions section: one table row per action, then each action's parameters."""
    chosen = list(actions)
    rows = ["| action | risk | what it does | IAM permissions |", "|---|---|---|---|"]
    rows += [f"| `{a.type_name}` | {a.risk.value} | {_cell(summary(a))} | "
             f"{', '.join(f'`{p}`' for p in a.permissions) or 'none'} |" for a in chosen]
    params = [f"- `{a.type_name}`: " + ", ".join(f"`{p.name}` ({_cell(p.type)}, {p.usage})" for p in param_docs(a))
              for a in chosen]
    intro = (f"Generated from the action registry (`{README_COMMAND}`); `risk: high` actions are always held "
             "for approval. `remediator actions` prints the same with parameter descriptions, and "
             "`remediator actions --iam` the IAM policy the configured policies need.")
    return "\n".join([intro, "", *rows, "", "Parameters:", "", *params]) + "\n"


def with_readme_section(readme: str, section: str) -> str:
    """`readme` with the text between the actions markers replaced by `section`."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {README_START} ... {README_END} markers")
    return readme[: start + len(README_START)] + "\n" + section + readme[end:]
