"""The least-privilege IAM policy for a set of actions (`remediator actions --iam`).

One statement per AWS service, each with the sorted, unique IAM actions the registered
actions declare. Resource is "*": targets come from alerts at run time, so the action list
is the least privilege this document can state; a deployment narrows Resource per statement
where it knows its ARNs (the forensics bucket, the blocklist IP set, the ECS cluster).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from remediator.actions.base import AnyAction

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
