"""Matching: table-driven conditions, and an index whose work does not grow with unrelated policies."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from remediator.model import Alert, Severity
from remediator.policy import match as match_module
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


def _brute_force(policies: list[Policy], alert: Alert) -> list[str]:
    """Every policy checked against every condition, no index: what the index must agree with."""
    one_by_one = [PolicyIndex([p]) for p in policies]
    return [p.name for p, alone in zip(policies, one_by_one, strict=True) if alone.match(alert)]


def test_the_index_finds_exactly_what_checking_every_policy_finds() -> None:
    shapes: list[dict[str, Any]] = []
    for i in range(12):
        shapes += [
            {"source": "alertmanager", "alertname": f"Name{i % 3}", "labels": {"env": "prod"}},
            {"alertname": {"regex": f"Name[{i % 3}-9]"}, "labels": {"service": {"in": ["erp-api", "erp-web"]}}},
            {"source": "cloudwatch", "labels": {"namespace": "AWS/RDS", "db": f"db-{i % 4}"}},
            {"labels": {"env": "prod", "service": f"erp-{'api' if i % 2 else 'web'}"}, "status": "any"},
            {"source": ["alertmanager", "cloudwatch"], "labels": {"service": {"regex": f"erp-.{{{i % 4}}}"}}},
            {"labels": {"region": {"in": ["eu", f"r{i}"]}, "db": {"absent": True}}},
            {"labels": {"maintenance": {"absent": True}}, "status": "resolved"},
            {"alertname": {"glob": f"*{i % 5}"}, "source": "cloudwatch"},
        ]
    policies = [policy(f"p{n}", match) for n, match in enumerate(shapes)]
    index = PolicyIndex(policies)
    alerts = [builders.alert(f"Name{i % 7}", source=source, status=status,
                             labels={"env": env, "service": service, "region": region, "namespace": "AWS/RDS",
                                     **({"db": f"db-{i % 5}"} if i % 3 else {})})
              for i in range(20) for source in ("alertmanager", "cloudwatch") for status in ("firing", "resolved")
              for env, service, region in (("prod", "erp-api", "eu"), ("dev", "erp-web", "r3"), ("prod", "x", "us"))]
    assert sum(bool(index.match(a)) for a in alerts) > len(alerts) // 2  # the shapes do match, often
    for _ in range(2):  # the second time from the memo
        for alert in alerts:
            assert [m.policy.name for m in index.match(alert)] == _brute_force(policies, alert), alert


def test_invented_names_and_values_never_grow_the_memo_past_its_bound() -> None:
    index = PolicyIndex([policy("named", {"alertname": {"regex": "Api.*"}}),
                         policy("by-value", {"labels": {"service": {"regex": "erp-.*"}}})])
    for i in range(match_module.MEMO * 2 + 7):
        alert = builders.alert(f"Api{i}", labels={"service": f"erp-{i}"})
        assert [m.policy.name for m in index.match(alert)] == ["named", "by-value"]
        assert index.match(builders.alert(f"Db{i}", labels={"service": f"crm-{i}"})) == []
    assert len(index._memo) <= match_module.MEMO


def test_a_policy_is_found_by_its_name_in_one_lookup() -> None:
    policies = [policy(f"p{i}", {"alertname": f"N{i}"}) for i in range(1000)]
    index = PolicyIndex(policies)
    assert index.by_name("p999") is policies[999] and index.by_name("nope") is None
