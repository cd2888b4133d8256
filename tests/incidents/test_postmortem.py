"""The postmortem draft: the template's sections, filled from the record, safe to render."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from remediator.incidents.lifecycle import measure
from remediator.incidents.postmortem import IncidentRecord, draft
from remediator.model import Incident, IncidentStatus, Phase, Severity, TimelineEvent
from remediator.settings import DEFAULT_TARGETS
from tests.conftest import T0
from tests.support import builders

UTC = ZoneInfo("UTC")


BASE = Incident(id="INC-2026-00007", correlation_key="g", title="ApiDown on erp-api", severity=Severity.P1,
                status=IncidentStatus.RESOLVED, phase=Phase.RECOVER, opened_at=T0, updated_at=T0,
                resolved_at=T0 + timedelta(minutes=72), acknowledged_by="alice",
                acknowledged_at=T0 + timedelta(minutes=6), alert_count=3)


def _incident(**changes: Any) -> Incident:
    return dataclasses.replace(BASE, **changes)


def _draft(incident: Incident, timeline: list[TimelineEvent]) -> str:
    targets = measure(incident, DEFAULT_TARGETS[incident.severity], UTC, T0 + timedelta(hours=3))
    request = builders.request(incident_id=incident.id)
    record = IncidentRecord(incident, timeline, [builders.audit(request)], [builders.approval(incident_id=incident.id)])
    return draft(record, targets, UTC, T0 + timedelta(hours=3))


def test_the_draft_has_the_templates_sections_filled_from_the_record() -> None:
    timeline = [TimelineEvent("INC-2026-00007", T0, "detected", "ApiDown: the API answers 503"),
                TimelineEvent("INC-2026-00007", T0 + timedelta(minutes=6), "acknowledged", "acknowledged by alice")]
    text = _draft(_incident(), timeline)
    for heading in ("# Postmortem: INC-2026-00007 — ApiDown on erp-api", "## Overview", "## Timeline",
                    "## Root cause", "## Lessons learned", "## Prevention checklist"):
        assert heading in text
    assert "| Start | 2026-01-05 09:00:00 UTC |" in text
    assert "| End | 2026-01-05 10:12:00 UTC |" in text
    assert "| Duration | 1 h 12 min |" in text
    assert "missed: recover" in text  # 72 minutes for a P1 (1 h)
    assert "| Impact | *Who could not do what" in text
    assert "| 2026-01-05 09:06:00 UTC | acknowledged | acknowledged by alice |" in text
    assert "*What failed, and why?" in text  # no root cause recorded yet: a prompt
    assert text.count("- [ ] ") == 6


def test_what_alerts_said_cannot_break_the_table_or_inject_html() -> None:
    evil = "x | <script>alert(1)</script>\n| forged | row |"
    text = _draft(_incident(title=evil, root_cause="pgbouncer pool <b>exhausted</b>"),
                  [TimelineEvent("INC-2026-00007", T0, "detected", evil)])
    assert "<script>" not in text and "<b>" not in text
    assert "x \\| &lt;script&gt;alert(1)&lt;/script&gt; \\| forged \\| row \\|" in text
    assert "pgbouncer pool &lt;b&gt;exhausted&lt;/b&gt;" in text
    timeline_rows = [line for line in text.splitlines() if line.startswith("| 2026-01-05 09:00:00 UTC")]
    assert len(timeline_rows) == 1  # the one event, on one row
    assert not any(line.startswith("| forged") for line in text.splitlines())


def test_an_open_incident_says_so() -> None:
    text = _draft(_incident(status=IncidentStatus.OPEN, resolved_at=None), [])
    assert "| End | — |" in text and "3 h so far (still open)" in text
