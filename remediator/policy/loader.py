"""Load a directory of YAML policies, reporting every problem at once with file and path.

Files under a folder named `fixtures` are not policies: they are the directory's policy
fixtures, read by `remediator test` (remediator/tester.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from remediator.actions.base import ActionRegistry
from remediator.errors import PolicyError, TemplateError
from remediator.policy import template
from remediator.policy.model import ActionStep, Policy, PolicyFile

FIXTURES_DIR = "fixtures"


def _loc(parts: Iterable[object]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _pydantic_problems(prefix: str, exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        loc = _loc(error["loc"])
        problems.append(f"{prefix}{'.' + loc if loc else ''}: {message}")
    return problems


def check_params(step: ActionStep, registry: ActionRegistry) -> list[str]:
    """Problems with one step's action type and parameters (paths relative to the step)."""
    action = registry.get(step.type)
    if action is None:
        return [f"type: unknown action {step.type!r} (known: {', '.join(registry.names())})"]
    problems: list[str] = []
    fields = action.Params.model_fields
    known = set(fields) | {f.alias for f in fields.values() if f.alias}
    templated: set[str] = set()
    for key, value in step.params.items():
        if key not in known:
            problems.append(f"params.{key}: unknown parameter of {step.type}")
        elif template.is_template(value):
            templated.add(key)
            try:
                template.check(value)
            except TemplateError as exc:
                problems.append(f"params.{key}: {exc}")
    concrete = {k: v for k, v in step.params.items() if k in known and k not in templated}
    try:
        action.Params.model_validate(concrete)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error["loc"]
            # Templated fields are validated when the alert fills them, and so are checks over the
            # whole model while any field is templated (the missing value may be the one they need).
            if (loc and loc[0] in templated) or (not loc and templated):
                continue
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"params{'.' + _loc(loc) if loc else ''}: {message}")
    return problems


def parse_document(document: Any) -> list[Any]:
    """A file holds one policy mapping, a list of them, or `policies: [...]`."""
    if isinstance(document, Mapping) and set(document) == {"policies"}:
        items = document["policies"]
        return list(items) if isinstance(items, list) else [items]
    if isinstance(document, list):
        return document
    return [document]


def load_policies(directory: Path, registry: ActionRegistry) -> list[Policy]:
    """Every `*.yaml`/`*.yml` under `directory` but fixtures, validated; PolicyError lists every problem."""
    if not directory.is_dir():
        raise PolicyError([f"{directory}: not a directory"])
    files = sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
                   and FIXTURES_DIR not in p.relative_to(directory).parts[:-1])
    policies: list[Policy] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for path in files:
        file_policies, file_problems = load_file(path, registry)
        problems += file_problems
        for index, policy in file_policies:
            where = f"{path}: policies[{index}] ({policy.name})"
            if policy.name in seen:
                problems.append(f"{where}: name already used in {seen[policy.name]}")
                continue
            seen[policy.name] = str(path)
            policies.append(policy)
    if problems:
        raise PolicyError(problems)
    return policies


def load_file(path: Path, registry: ActionRegistry) -> tuple[list[tuple[int, Policy]], list[str]]:
    """The valid policies of one file (with their index) and the problems of the others."""
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"{path}: cannot read ({exc})"]
    except yaml.YAMLError as exc:
        return [], [f"{path}: not valid YAML ({exc})".replace("\n", " ")]
    items = [item for document in documents for item in parse_document(document)]
    loaded: list[tuple[int, Policy]] = []
    problems: list[str] = []
    for index, item in enumerate(items):
        name = item.get("name", "?") if isinstance(item, Mapping) else "?"
        prefix = f"{path}: policies[{index}] ({name})"
        if not isinstance(item, Mapping):
            problems.append(f"{prefix}: a policy must be a mapping")
            continue
        try:
            policy = PolicyFile.model_validate({"policies": [item]}).policies[0]
        except ValidationError as exc:
            for problem in _pydantic_problems(prefix, exc):
                problems.append(problem.replace(f"{prefix}.policies[0]", prefix, 1))
            continue
        step_problems = [
            f"{prefix}.actions[{i}].{problem}"
            for i, step in enumerate(policy.actions)
            for problem in check_params(step, registry)
        ]
        problems += step_problems
        if not step_problems:
            loaded.append((index, policy))
    return loaded, problems
