"""From a match to typed action requests: fill templates, validate into the action's Params."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from remediator.actions.base import ActionParams, ActionRegistry, AnyAction, shown_to_people
from remediator.errors import TemplateError
from remediator.model import ActionRequest, Alert, Incident, Risk, stable_id
from remediator.policy import template
from remediator.policy.match import Match
from remediator.policy.model import ActionStep


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """One step of a matched policy: a request ready for guardrails, or why it could not be planned."""

    request: ActionRequest
    step: ActionStep
    params: ActionParams | None
    error: str = ""
    # Set for an ordered step (`when`) once the step it waited for settled (engine/sequence.py):
    skip: str = ""  # why it is recorded as skipped instead of run
    condition: str = ""  # why it runs, added to its decision detail
    dry_run_only: bool = False  # a dry run because the step before it only ran dry


def plan_hash(action: str, target: str, params: Mapping[str, Any]) -> str:
    """What an approver approves: the action, its target and its validated parameters."""
    canonical = orjson.dumps({"action": action, "target": target, "params": params}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def request_id(incident_id: str, policy: str, step: int, hash_of_plan: str, window: str) -> str:
    """One request per incident, policy step, plan and cooldown window: alerts of an incident that
    lead to the same plan (same action, target, parameters) and started within one cooldown window
    join the request the first of them made, rather than repeat it — an alert storm is one action,
    one audit record, one approval, not hundreds — while an occurrence that starts after the window
    (an attack that resumes once its block expired) makes a new request, which the cooldown then
    judges. The window comes from the alert's own start, so every replica computes the same id and
    the request is claimed at most once."""
    return stable_id(incident_id, policy, str(step), hash_of_plan, window)


def cooldown_window(alert: Alert, cooldown: timedelta) -> str:
    """Which cooldown window the alert started in (per occurrence when there is no cooldown)."""
    seconds = cooldown.total_seconds()
    return str(int(alert.starts_at.timestamp() // seconds)) if seconds > 0 else alert.id


def template_scope(alert: Alert, incident_id: str, policy: str,
                   previous: Mapping[str, str] | None = None) -> dict[str, Mapping[str, str]]:
    return {
        **({"previous": previous} if previous is not None else {}),
        "labels": alert.labels,
        "annotations": alert.annotations,
        "alert": {"name": alert.name, "source": alert.source, "status": alert.status,
                  "fingerprint": alert.fingerprint},
        "incident": {"id": incident_id},
        "policy": {"name": policy},
    }


def render_params(params: Mapping[str, Any], scope: Mapping[str, Mapping[str, str]],
                  action: AnyAction | None) -> Any:
    """A step's parameters filled from the alert; those people read get each value on one line."""
    shown = shown_to_people(action.Params) if action is not None else frozenset()
    if not shown:
        return template.render(params, scope)
    people = template.one_line_scope(scope)
    return {name: template.render(value, people if name in shown else scope) for name, value in params.items()}


@dataclass(frozen=True, slots=True)
class _Validated:
    params: ActionParams | None
    target: str
    dumped: Mapping[str, Any]
    plan_hash: str
    error: str


@functools.lru_cache(maxsize=4096)
def _validate(action: AnyAction, rendered_json: bytes) -> _Validated:
    """Rendered parameters validated into the action's types (an alert storm renders the same
    parameters thousands of times: they are validated once; the models are immutable)."""
    rendered = orjson.loads(rendered_json)
    try:
        params = action.Params.model_validate(rendered)
    except ValidationError as exc:
        error = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors())
        return _Validated(None, "", rendered, plan_hash(action.type_name, "", rendered), error)
    target = action.target(params)
    dumped = params.model_dump(mode="json")
    return _Validated(params, target, dumped, plan_hash(action.type_name, target, dumped), "")


def plan_step(
    match: Match, index: int, incident: Incident, registry: ActionRegistry, now: datetime,
    *, default_cooldown: timedelta = timedelta(minutes=10), previous: Mapping[str, str] | None = None,
) -> PlannedStep:
    policy, alert = match.policy, match.alert
    step = policy.actions[index]
    cooldown = step.guardrails.cooldown if step.guardrails.cooldown is not None else default_cooldown
    action = registry.get(step.type)
    risk = action.risk if action else Risk.NORMAL
    try:
        rendered = render_params(step.params, template_scope(alert, incident.id, policy.name, previous), action)
        if action is None:
            unknown = f"unknown action {step.type!r}"
            checked = _Validated(None, "", rendered, plan_hash(step.type, "", rendered), unknown)
        else:
            checked = _validate(action, orjson.dumps(rendered, option=orjson.OPT_SORT_KEYS))
    except TemplateError as exc:
        checked = _Validated(None, "", dict(step.params), plan_hash(step.type, "", step.params), str(exc))
    params, target, rendered, error = checked.params, checked.target, checked.dumped, checked.error
    request = ActionRequest(
        id=request_id(incident.id, policy.name, index, checked.plan_hash, cooldown_window(alert, cooldown)),
        alert_id=alert.id,
        incident_id=incident.id,
        policy=policy.name,
        step=index,
        action=step.type,
        target=target,
        params=rendered,
        severity=policy.severity,
        risk=risk,
        plan_hash=checked.plan_hash,
        created_at=now,
    )
    return PlannedStep(request, step, params, error)
