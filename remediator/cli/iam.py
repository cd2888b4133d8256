"""The least-privilege IAM policy for a set of actions (`remediator actions --iam`).

`remediator actions --iam` asks for the actions the configured policies use (`used_actions`),
not for every registered one, plus what the daemon itself calls (`daemon_permissions`): a
deployment grants what its runbook can do, nothing more.
One statement per AWS service, each with the sorted, unique IAM actions those actions declare.
Resource is "*": targets come from alerts at run time, so the action list is the least privilege
this document can state; a deployment narrows Resource per statement where it knows its ARNs
(the forensics bucket, the blocklist IP set, the ECS cluster).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from remediator.actions.base import ActionRegistry, AnyAction
from remediator.policy.loader import load_policies
from remediator.policy.model import Policy
from remediator.settings import Settings
from remediator.sources.sns.confirm import CONFIRM_PERMISSIONS

PERMISSION = re.compile(r"^(?P<service>[a-z0-9-]+):(?P<operation>[A-Z][A-Za-z0-9]+)$")
# Privileges inside a database or cache (a PostgreSQL role, a Redis ACL rule), not IAM actions:
# `database_privileges` lists them; they never go into the IAM document.
DATABASE_PRIVILEGE = re.compile(r"^(?P<system>postgres|redis): \S.*$")


def iam_policy(actions: Iterable[AnyAction], *, extra: Iterable[str] = ()) -> dict[str, Any]:
    """An IAM policy document (Version 2012-10-17) allowing exactly what `actions` declare,
    plus `extra`: what the daemon itself calls (sns:ConfirmSubscription, for its SNS intake).

    Raises ValueError for a permission that is not "service:Operation" (a typo would
    otherwise ship a policy that silently grants nothing, or too much).
    """
    by_service: dict[str, set[str]] = {}
    wanted = [(action.type_name, p) for action in actions for p in action.permissions
              if not DATABASE_PRIVILEGE.match(p)]
    for owner, permission in [*wanted, *(("the daemon", p) for p in extra)]:
        found = PERMISSION.match(permission)
        if found is None:
            raise ValueError(f"{owner}: {permission!r} is not an IAM action like 'ecs:UpdateService'")
        by_service.setdefault(found["service"], set()).add(permission)
    statements = [
        {"Sid": "Remediator" + "".join(part.capitalize() for part in service.split("-")),
         "Effect": "Allow", "Action": sorted(names), "Resource": "*"}
        for service, names in sorted(by_service.items())
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def database_privileges(actions: Iterable[AnyAction]) -> dict[str, list[str]]:
    """The PostgreSQL and Redis privileges `actions` need, by system (for the operator's grants)."""
    found: dict[str, set[str]] = {}
    for action in actions:
        for permission in action.permissions:
            matched = DATABASE_PRIVILEGE.match(permission)
            if matched is not None:
                found.setdefault(matched["system"], set()).add(permission.split(": ", 1)[1])
    return {system: sorted(names) for system, names in sorted(found.items())}


def used_actions(policies: Iterable[Policy], registry: ActionRegistry) -> list[AnyAction]:
    """The actions enabled policies run, with the follow-ups the daemon runs on their behalf.

    Disabled policies never run (the policy index leaves them out), so they grant nothing; an
    operator who enables one regenerates the policy, and until then its AWS calls are denied.
    Raises LookupError for a type the registry does not know (the loader refuses those first).
    """
    wanted = {step.type for policy in policies if policy.enabled for step in policy.actions}
    chosen: dict[str, AnyAction] = {}
    while wanted:
        name = wanted.pop()
        action = registry.get(name)
        if action is None:
            raise LookupError(f"no registered action {name!r}")
        if name not in chosen:
            chosen[name] = action
            wanted.update(t for t in action.follow_ups if t not in chosen)
    return [chosen[name] for name in sorted(chosen)]


def policy_json(document: dict[str, Any]) -> str:
    """The document as `remediator actions --iam` prints it and `deploy/iam-policy.json` holds it."""
    return json.dumps(document, indent=2) + "\n"


def daemon_permissions(settings: Settings) -> tuple[str, ...]:
    """What the daemon itself calls, whatever its policies: confirming SNS subscriptions through
    the API (`sns.confirm_method`, ConfirmSubscription by default; SubscribeURL needs no role)."""
    return CONFIRM_PERMISSIONS if settings.sns.confirm_method == "ConfirmSubscription" else ()


def configured_policy(settings: Settings, registry: ActionRegistry) -> dict[str, Any]:
    """What `remediator actions --iam` prints: the actions the enabled policies in
    `settings.policies_dir` use, their follow-ups, and the daemon's own calls.

    Raises PolicyError when the policies do not load (a policy that cannot run grants nothing).
    """
    policies = load_policies(settings.policies_dir, registry)
    return iam_policy(used_actions(policies, registry), extra=daemon_permissions(settings))
