"""Parameter templates and planning: values from the alert, validated into the action's types."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from remediator.actions.registry import default_registry
from remediator.errors import TemplateError
from remediator.model import Incident, IncidentStatus, Phase, Severity
from remediator.policy import template
from remediator.policy.match import Match
from remediator.policy.model import Policy
from remediator.policy.plan import plan_step
from tests.conftest import T0
from tests.support import builders

SCOPE = {"labels": {"instance": "db-1:9187", "n": "3"}, "annotations": {"summary": "hot"},
         "alert": {"name": "X"}, "incident": {"id": "INC-1"}}


@pytest.mark.parametrize(("value", "expected"), [
    ("{labels.instance}", "db-1:9187"),
    ("{alert.name} on {labels.instance}: {annotations.summary}", "X on db-1:9187: hot"),
    ("literal {{braces}} stay", "literal {braces} stay"),
    ({"nested": ["{labels.n}", 4]}, {"nested": ["3", 4]}),
    (7, 7),
])
def test_render(value: object, expected: object) -> None:
    assert template.render(value, SCOPE) == expected


@pytest.mark.parametrize(("value", "error"), [
    ("{labels.missing}", "the alert has no such value"),
    ("{secrets.x}", "not a known reference"),
    ("{alert.password}", "not a known reference"),
    ("{labels.x", "unbalanced brace"),
])
def test_render_errors(value: str, error: str) -> None:
    with pytest.raises(TemplateError, match=error):
        template.render(value, SCOPE)


INCIDENT = Incident("INC-2026-00001", "k", "t", Severity.P2, IncidentStatus.OPEN, Phase.DETECT, T0, T0)


def _policy(params: dict[str, object]) -> Policy:
    return Policy.model_validate({"name": "p", "severity": "P2", "match": {},
                                  "actions": [{"type": "notify.webhook", "params": params}]})


def test_plan_fills_and_validates_params_and_hashes_the_plan() -> None:
    alert = builders.alert(labels={"team": "dba"})
    planned = plan_step(Match(_policy({"to": "{labels.team}", "text": "{annotations.summary}"}), alert), 0,
                        INCIDENT, default_registry(), T0)
    assert planned.error == "" and planned.params is not None
    assert planned.request.params == {"to": "dba", "text": "too many connections", "title": ""}
    assert planned.request.target == "notify:dba"
    again = plan_step(Match(_policy({"to": "{labels.team}", "text": "{annotations.summary}"}), alert), 0,
                      INCIDENT, default_registry(), T0)
    assert again.request.id == planned.request.id and again.request.plan_hash == planned.request.plan_hash


def test_a_label_value_that_does_not_fit_the_type_is_a_plan_error_not_a_crash() -> None:
    alert = builders.alert(labels={"team": "rm -rf /"})
    planned = plan_step(Match(_policy({"to": "{labels.team}", "text": "x"}), alert), 0, INCIDENT,
                        default_registry(), T0)
    assert planned.params is None and "to: String should match pattern" in planned.error


def test_a_missing_label_is_a_plan_error() -> None:
    planned = plan_step(Match(_policy({"to": "{labels.nope}", "text": "x"}), builders.alert()), 0, INCIDENT,
                        default_registry(), T0)
    assert planned.params is None and "labels.nope" in planned.error


def test_alerts_of_one_incident_with_one_plan_share_a_request_within_a_cooldown_window() -> None:
    policy = _policy({"to": "oncall", "text": "{annotations.summary}"})
    registry = default_registry()
    first = builders.alert(fingerprint="fp-1", starts_at=T0)
    storm = builders.alert(fingerprint="fp-2", starts_at=T0 + timedelta(minutes=3))
    later = builders.alert(fingerprint="fp-3", starts_at=T0 + timedelta(minutes=12))
    ids = [plan_step(Match(policy, a), 0, INCIDENT, registry, T0, default_cooldown=timedelta(minutes=10)).request.id
           for a in (first, storm, later)]
    assert ids[0] == ids[1] != ids[2]  # the same plan in the same window joins; a later one is a new request
    other = plan_step(Match(policy, first), 0, replace(INCIDENT, id="INC-2026-00002"), registry, T0).request.id
    assert other != ids[0]  # another incident: another request
    no_cooldown = [plan_step(Match(policy, a), 0, INCIDENT, registry, T0, default_cooldown=timedelta(0)).request.id
                   for a in (first, storm)]
    assert no_cooldown[0] != no_cooldown[1]  # without a cooldown every occurrence is its own request
