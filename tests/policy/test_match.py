"""Matching: table-driven conditions, and an index whose work does not grow with unrelated policies."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from remediator.model import Alert, Severity
from remediator.policy.match import PolicyIndex, incident_severity
from remediator.policy.model import Policy
from tests.support import builders


def policy(name: str, match: dict[str, Any], severity: str = "P3") -> Policy:
    return Policy.model_validate({
        "name": name, "severity": severity, "match": match,
        "actions": [{"type": "notify.webhook", "params": {"to": "oncall", "text": "x"}}],
    })


ALERT = builders.alert("ApiHigh5xxRate", labels={"env": "prod", "service": "erp-api", "region": "eu"})
RESOLVED = builders.alert("ApiHigh5xxRate", status="resolved", labels={"env": "prod", "service": "erp-api"})

CASES: list[tuple[str, dict[str, Any], Alert, bool]] = [
    ("exact name", {"alertname": "ApiHigh5xxRate"}, ALERT, True),
    ("other name", {"alertname": "ApiLatency"}, ALERT, False),
    ("glob", {"alertname": {"glob": "Api*5xx*"}}, ALERT, True),
    ("glob miss", {"alertname": {"glob": "Db*"}}, ALERT, False),
    ("regex full match", {"alertname": {"regex": "Api.*Rate"}}, ALERT, True),
    ("regex is anchored", {"alertname": {"regex": "High5xx"}}, ALERT, False),
    ("source", {"source": "alertmanager"}, ALERT, True),
    ("source list", {"source": ["cloudwatch", "alertmanager"]}, ALERT, True),
    ("other source", {"source": "cloudwatch"}, ALERT, False),
    ("label equals", {"labels": {"env": "prod"}}, ALERT, True),
    ("label differs", {"labels": {"env": "staging"}}, ALERT, False),
    ("label missing for equals", {"labels": {"team": "db"}}, ALERT, False),
    ("label regex", {"labels": {"service": {"regex": "erp-(api|web)"}}}, ALERT, True),
    ("label regex miss", {"labels": {"service": {"regex": "erp-web"}}}, ALERT, False),
    ("label in", {"labels": {"service": {"in": ["erp-web", "erp-api"]}}}, ALERT, True),
    ("label not in", {"labels": {"service": {"in": ["erp-web"]}}}, ALERT, False),
    ("label absent", {"labels": {"maintenance": {"absent": True}}}, ALERT, True),
    ("label present", {"labels": {"env": {"absent": True}}}, ALERT, False),
    ("firing by default", {"alertname": "ApiHigh5xxRate"}, RESOLVED, False),
    ("resolved asked", {"alertname": "ApiHigh5xxRate", "status": "resolved"}, RESOLVED, True),
    ("any status", {"alertname": "ApiHigh5xxRate", "status": "any"}, RESOLVED, True),
    ("all conditions", {"source": "alertmanager", "alertname": {"glob": "Api*"},
                        "labels": {"env": "prod", "region": {"in": ["eu"]}}}, ALERT, True),
    ("one condition fails", {"source": "alertmanager", "alertname": {"glob": "Api*"},
                             "labels": {"env": "prod", "region": {"in": ["us"]}}}, ALERT, False),
]


@pytest.mark.parametrize(("case", "match", "alert", "expected"), CASES, ids=[c[0] for c in CASES])
def test_conditions(case: str, match: dict[str, Any], alert: Alert, expected: bool) -> None:
    index = PolicyIndex([policy("p", match)])
    assert bool(index.match(alert)) is expected


def test_matches_come_back_in_policy_order() -> None:
    index = PolicyIndex([policy("wild", {"alertname": {"glob": "*"}}), policy("exact", {"alertname": "ApiHigh5xxRate"}),
                         policy("any", {})])
    assert [m.policy.name for m in index.match(ALERT)] == ["wild", "exact", "any"]


def test_disabled_policies_never_match() -> None:
    disabled = Policy.model_validate({**policy("off", {}).model_dump(), "enabled": False})
    assert PolicyIndex([disabled]).match(ALERT) == []


def test_unrelated_policies_are_not_even_considered() -> None:
    related = [policy("exact", {"source": "alertmanager", "alertname": "ApiHigh5xxRate"}),
               policy("wild", {"source": "alertmanager", "alertname": {"glob": "Api*"}})]
    unrelated = [policy(f"other-{i}", {"source": "alertmanager", "alertname": f"Other{i}"}) for i in range(5000)]
    unrelated += [policy(f"cw-{i}", {"source": "cloudwatch", "alertname": {"glob": f"X{i}*"}}) for i in range(500)]
    index = PolicyIndex([*unrelated, *related])
    assert [c.policy.name for c in index.candidates(ALERT)] == ["exact", "wild"]
    assert [m.policy.name for m in index.match(ALERT)] == ["exact", "wild"]


def test_incident_severity_is_the_highest_of_the_policies_and_the_sources_own() -> None:
    guardduty_high = replace(ALERT, severity_hint=Severity.P1)
    notify_only = PolicyIndex([policy("notify", {"alertname": "ApiHigh5xxRate"}, severity="P2")])
    assert incident_severity(notify_only.match(guardduty_high), guardduty_high) is Severity.P1
    assert incident_severity(notify_only.match(ALERT), ALERT) is Severity.P2
    assert incident_severity([], ALERT) is Severity.P4
