"""Settings of approvals and incidents: the runbook's defaults, partial overrides, clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from remediator.errors import SettingsError
from remediator.model import Severity
from remediator.settings import load_settings


def test_the_runbook_defaults() -> None:
    settings = load_settings(None, {})
    targets = settings.incidents.targets
    assert (targets[Severity.P1].respond, targets[Severity.P1].recover) == (timedelta(minutes=15), timedelta(hours=1))
    assert (targets[Severity.P2].respond, targets[Severity.P2].recover) == (timedelta(minutes=30), timedelta(hours=4))
    assert (targets[Severity.P3].respond, targets[Severity.P3].recover) == (timedelta(hours=2), timedelta(hours=24))
    assert (targets[Severity.P4].respond, targets[Severity.P4].recover) == ("next_business_day", timedelta(weeks=1))
    # The runbook's §3.3 matrix, "A → B" read as "B is told then"; (reminder) marks a repeat.
    matrix = {severity: [(s.after, s.contacts, s.reminder) for s in steps]
              for severity, steps in settings.incidents.escalation.items()}
    minutes = timedelta(minutes=1)
    assert matrix == {
        Severity.P1: [(15 * minutes, ["head_of_department"], False), (30 * minutes, ["cto"], False),
                      (60 * minutes, ["ceo"], False), (120 * minutes, ["external_support"], False)],
        Severity.P2: [(15 * minutes, ["team_lead"], False), (30 * minutes, ["head_of_department"], False),
                      (60 * minutes, ["cto"], False), (120 * minutes, ["cto"], True)],
        Severity.P3: [(30 * minutes, ["team_lead"], False), (60 * minutes, ["head_of_department"], False),
                      (120 * minutes, ["head_of_department"], True)],
        Severity.P4: [],
    }
    assert settings.approvals.required_for(Severity.P1) == 1
    assert settings.approvals.expire_after == timedelta(minutes=30)


def test_a_severity_given_replaces_only_that_severity(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("""
notify: {lead: {url: "https://hooks.example/lead"}}
approvals: {approvers_by_severity: {P1: 2}, notify: lead}
incidents:
  targets: {P2: {respond: 20m, recover: 2h}}
  escalation: {P3: [{after: 1h, contacts: [team_lead]}]}
  contacts: {team_lead: lead}
""")
    settings = load_settings(path, {})
    assert settings.approvals.required_for(Severity.P1) == 2 and settings.approvals.required_for(Severity.P2) == 1
    assert settings.incidents.targets[Severity.P2].respond == timedelta(minutes=20)
    assert settings.incidents.targets[Severity.P1].respond == timedelta(minutes=15)
    assert settings.incidents.escalation[Severity.P3][0].after == timedelta(hours=1)
    assert len(settings.incidents.escalation[Severity.P1]) == 4


def test_bad_people_settings_are_reported_with_their_keys(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("""
approvals: {expire_after: 10m, remind_before: 10m, approvers_by_severity: {P1: 9}}
incidents:
  escalation: {P1: [{after: 30m, contacts: [cto]}, {after: 15m, contacts: [ceo]}]}
  timezone: Mars/Olympus
api: {session_secret: short}
""")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    text = "\n".join(raised.value.problems)
    assert "approvals.approvers_by_severity: P1: between 1 and 5 approvers" in text
    assert "incidents.escalation: P1: steps must be in strictly increasing order" in text
    assert "incidents.timezone: unknown time zone 'Mars/Olympus'" in text
    assert "api.session_secret: must be at least 32 characters" in text


def test_named_targets_must_exist(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("approvals: {notify: pager}\nincidents: {contacts: {cto: cto-phone}}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    text = "\n".join(raised.value.problems)
    assert "approvals.notify: no notify target named 'pager'" in text
    assert "incidents.contacts.cto: no notify target named 'cto-phone'" in text


def test_a_reminder_must_come_before_expiry(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("approvals: {expire_after: 10m, remind_before: 10m}\n")
    with pytest.raises(SettingsError, match="remind_before must be shorter"):
        load_settings(path, {})
