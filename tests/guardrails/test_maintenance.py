"""Maintenance windows: one-off and cron-like, in the configured time zone, by policy, action type
and target; a covered request is denied `maintenance_window`, everything else passes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.clock import FakeClock
from remediator.errors import SettingsError
from remediator.guardrails import GuardInput
from remediator.model import DecisionReason, Outcome, Verdict
from remediator.policy.model import StepGuardrails
from remediator.settings import GuardrailSettings, load_settings
from remediator.settings.maintenance import CronSchedule
from tests.conftest import corpus_file
from tests.guardrails.test_guardrails import NOTIFY, guard_input, rails
from tests.support import builders
from tests.support.daemon import DaemonFactory

SEOUL_MONDAY_0230 = datetime(2026, 1, 4, 17, 30, tzinfo=UTC)  # 02:30 on Monday 5 January in Seoul (UTC+9)
WEEKLY = {"name": "db-patching", "reason": "RDS patches", "cron": "0 2 * * 1", "duration": "2h",
          "targets": ["erp-prod-db*"]}


BEARER = {"Authorization": "Bearer am-secret"}
PAYLOAD = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()


def given(clock: FakeClock, **request: Any) -> GuardInput:
    """A request of the given policy, action type and target (the action run is notify.webhook's code)."""
    return GuardInput(builders.request(**request), StepGuardrails(), builders.alert(), NOTIFY, clock.now())


def windows(*entries: dict[str, Any], zone: str = "Asia/Seoul") -> dict[str, Any]:
    return {"time_zone": zone, "maintenance": list(entries)}


@pytest.mark.parametrize(("at", "open_"), [
    (datetime(2026, 1, 4, 16, 59, tzinfo=UTC), False),  # 01:59 Monday in Seoul: not yet
    (datetime(2026, 1, 4, 17, 0, tzinfo=UTC), True),  # 02:00: it opens
    (SEOUL_MONDAY_0230, True),
    (datetime(2026, 1, 4, 18, 59, tzinfo=UTC), True),
    (datetime(2026, 1, 4, 19, 0, tzinfo=UTC), False),  # 04:00: closed again (the end is exclusive)
    (datetime(2026, 1, 5, 2, 30, tzinfo=UTC), False),  # 02:30 Monday in UTC is 11:30 in Seoul
    (datetime(2026, 1, 11, 17, 30, tzinfo=UTC), True),  # a week later
])
async def test_a_weekly_window_in_the_configured_time_zone(at: datetime, open_: bool) -> None:
    guardrails, _ = rails(**windows(WEEKLY))
    decision = await guardrails.evaluate(guard_input(FakeClock(at), action=NOTIFY, target="erp-prod-db"))
    if open_:
        assert (decision.verdict, decision.reason) == (Verdict.DENY, DecisionReason.MAINTENANCE_WINDOW)
        assert "db-patching" in decision.detail and "RDS patches" in decision.detail
        assert "+09:00" in decision.detail  # its end, in the zone people planned it in
    else:
        assert decision.verdict is Verdict.ALLOW, decision.detail


@pytest.mark.parametrize(("scope", "request_fields", "covered"), [
    ({}, {}, True),  # no scope: everything
    ({"targets": ["erp-prod-db*"]}, {"target": "erp-prod-db-replica"}, True),
    ({"targets": ["erp-prod-db*"]}, {"target": "erp-prod-sessions"}, False),
    ({"policies": ["pg-*"]}, {"policy": "pg-too-many-connections"}, True),
    ({"policies": ["pg-*"]}, {"policy": "api-5xx-redeploy"}, False),
    ({"actions": ["postgres.*"]}, {"action": "postgres.terminate_idle"}, True),
    ({"actions": ["postgres.*"]}, {"action": "notify.webhook"}, False),
    ({"actions": ["postgres.*"], "targets": ["erp-prod-db"]},
     {"action": "postgres.terminate_idle", "target": "erp-other-db"}, False),  # every list must match
])
async def test_a_window_covers_what_its_globs_name(scope: dict[str, Any], request_fields: dict[str, Any],
                                                  covered: bool) -> None:
    one_off = {"name": "migration", "start": "2026-01-05T02:00:00", "end": "2026-01-05T06:00:00", **scope}
    guardrails, _ = rails(**windows(one_off))
    decision = await guardrails.evaluate(given(FakeClock(SEOUL_MONDAY_0230), **request_fields))
    assert (decision.reason is DecisionReason.MAINTENANCE_WINDOW) is covered, decision.detail


async def test_a_one_off_window_with_an_offset_ignores_the_time_zone() -> None:
    one_off = {"name": "failover-drill", "start": "2026-01-04T17:00:00Z", "end": "2026-01-04T18:00:00Z"}
    guardrails, _ = rails(**windows(one_off, zone="America/New_York"))
    inside = await guardrails.evaluate(guard_input(FakeClock(SEOUL_MONDAY_0230), action=NOTIFY))
    after = await guardrails.evaluate(guard_input(FakeClock(SEOUL_MONDAY_0230 + timedelta(hours=1)), action=NOTIFY))
    assert (inside.reason, after.reason) == (DecisionReason.MAINTENANCE_WINDOW, DecisionReason.ALLOWED)


async def test_the_kill_switch_is_still_reported_first() -> None:
    guardrails, _ = rails(kill_switch=True, **windows(WEEKLY))
    decision = await guardrails.evaluate(guard_input(FakeClock(SEOUL_MONDAY_0230), action=NOTIFY,
                                                     target="erp-prod-db"))
    assert decision.reason is DecisionReason.KILL_SWITCH


@pytest.mark.parametrize(("cron", "day", "runs"), [
    ("0 2 1 * *", datetime(2026, 2, 1), True),
    ("0 2 1 * *", datetime(2026, 2, 2), False),
    ("0 2 1 * 0", datetime(2026, 2, 8), True),  # both day fields restricted: either matches (a Sunday)
    ("0 2 1 * 0", datetime(2026, 2, 9), False),
    ("0 2 * * 7", datetime(2026, 2, 8), True),  # 7 is Sunday too
    ("0 2 * 1-3 1-5", datetime(2026, 3, 6), True),  # a Friday in March
    ("0 2 * 1-3 1-5", datetime(2026, 3, 7), False),  # Saturday
    ("0 2 */10 * *", datetime(2026, 3, 21), True),
    ("0 2 */10 * *", datetime(2026, 3, 20), False),
])
def test_cron_days(cron: str, day: datetime, runs: bool) -> None:
    assert CronSchedule.parse(cron).runs_on(day.date()) is runs


@pytest.mark.parametrize(("window", "says"), [
    ({"name": "w", "cron": "0 2 * *", "duration": "1h"}, "five fields"),
    ({"name": "w", "cron": "61 2 * * *", "duration": "1h"}, "outside 0-59"),
    ({"name": "w", "cron": "0 2 * * mon", "duration": "1h"}, "not a number"),
    ({"name": "w", "cron": "*/0 2 * * *", "duration": "1h"}, "positive number"),
    ({"name": "w", "cron": "0 2 * * *", "duration": "0s"}, "longer than zero"),
    ({"name": "w", "cron": "0 2 * * *", "duration": "8d"}, "at most 7 days"),
    ({"name": "w", "cron": "0 2 * * *"}, "one-off (start and end) or recurring"),
    ({"name": "w", "start": "2026-01-05T02:00", "end": "2026-01-05T01:00"}, "is not after start"),
    ({"name": "w", "start": "2026-01-05T02:00", "end": "2026-01-05T03:00Z"}, "both with an offset"),
    ({"name": "w", "start": "2026-01-05T02:00", "end": "2026-01-05T03:00", "cron": "0 2 * * *",
      "duration": "1h"}, "one-off (start and end) or recurring"),
    ({"name": "w", "cron": "0 2 * * *", "duration": "1h", "target": ["x"]}, "Extra inputs are not permitted"),
])
def test_a_window_that_cannot_be_meant_is_refused_with_its_reason(window: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        GuardrailSettings.model_validate({"maintenance": [window]})


def test_settings_refuse_an_unknown_zone_and_two_windows_of_one_name(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("guardrails:\n  time_zone: Mars/Olympus\n  maintenance:\n"
                      "    - {name: w, cron: '0 2 * * *', duration: 1h}\n"
                      "    - {name: w, cron: '0 3 * * *', duration: 1h}\n")
    with pytest.raises(SettingsError) as refused:
        load_settings(config)
    problems = " ".join(refused.value.problems)
    assert "guardrails.time_zone" in problems and "Mars/Olympus" in problems
    assert "two windows are named 'w'" in problems


async def test_in_the_daemon_alerts_are_recorded_and_the_action_is_denied(start_daemon: DaemonFactory) -> None:
    """T0 is 09:00 UTC: a window from 08:00 to 10:00 covers the notification the policy plans."""
    window = {"name": "ward-move", "reason": "ward 4 moves servers", "start": "2026-01-05T08:00:00",
              "end": "2026-01-05T10:00:00", "policies": ["pg-too-many-connections"]}
    daemon = await start_daemon(guardrails={"maintenance": [window]})
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    assert response.status == 200
    await daemon.engine.drain()
    assert daemon.count("alerts") == 2  # the alerts are recorded and the incident is opened
    [incident] = await daemon.deps.store.list_incidents()
    records = await daemon.deps.store.list_audit(incident.id, 10)
    assert records and {(r.verdict, r.decision_reason, r.outcome) for r in records} == {
        (Verdict.DENY, DecisionReason.MAINTENANCE_WINDOW, Outcome.NOT_RUN)}
    assert "ward-move" in records[0].decision_detail and "ward 4 moves servers" in records[0].decision_detail
    assert daemon.metric("remediator_decisions_total", verdict="deny", reason="maintenance_window") == len(records)
