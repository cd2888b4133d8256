"""The console's pictures as geometry: lanes, one mark per event, targets on the axis, bars to scale."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from remediator.incidents.lifecycle import measure
from remediator.model import Incident, IncidentStatus, Phase, Severity, TimelineEvent
from remediator.settings import SeverityTarget
from remediator.web.console_charts import LEFT, RIGHT, WIDTH, lane_of, stacked_bars, timeline
from tests.conftest import T0

UTC = ZoneInfo("UTC")
P1 = SeverityTarget(respond=timedelta(minutes=15), recover=timedelta(hours=1))


def _event(kind: str, minutes: float, request_id: str = "") -> TimelineEvent:
    return TimelineEvent("INC-2026-00001", T0 + timedelta(minutes=minutes), kind, f"{kind} happened",
                         request_id=request_id)


def _incident(**changes: Any) -> Incident:
    base = Incident(id="INC-2026-00001", correlation_key="api", title="ApiDown on erp-api", severity=Severity.P1,
                    status=IncidentStatus.OPEN, phase=Phase.TRIAGE, opened_at=T0, updated_at=T0,
                    phase_times={"detect": T0, "triage": T0 + timedelta(minutes=1)})
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(("kind", "request_id", "lane"), [
    ("detected", "", "alerts"), ("alert_resolved", "", "alerts"), ("severity_raised", "", "alerts"),
    ("decided", "r", "decisions"), ("executed", "r", "actions"), ("verified", "", "actions"),
    ("diagnostics", "r", "actions"),  # what an action wrote on the timeline
    ("approval_requested", "r", "approvals"), ("approval_vote", "r", "approvals"),
    ("escalated", "", "escalations"), ("acknowledged", "", "people"), ("note", "", "people"),
    ("closed", "", "people"), ("something_new", "", "other"),
])
def test_each_event_has_its_lane(kind: str, request_id: str, lane: str) -> None:
    assert lane_of(_event(kind, 0, request_id)) == lane


def test_one_mark_per_event_in_order_inside_the_picture() -> None:
    events = [_event("detected", 0), _event("decided", 1, "r"), _event("executed", 1, "r"),
              _event("executed", 1, "r2"), _event("note", 20), _event("escalated", 16)]
    now = T0 + timedelta(minutes=30)
    incident = _incident()
    chart = timeline(incident, events, measure(incident, P1, UTC, now), UTC, now)
    assert [(m.index, m.kind) for m in chart.marks] == [(i, e.kind) for i, e in enumerate(events)]
    assert all(LEFT <= m.x <= WIDTH - RIGHT and 0 < m.y < chart.height for m in chart.marks)
    same_moment = [m for m in chart.marks if m.lane == "actions"]
    assert len({m.y for m in same_moment}) == 2  # two at the same moment, side by side
    assert [lane for lane, _ in chart.lanes] == ["alerts", "decisions", "actions", "escalations", "people"]


def test_the_axis_reaches_both_targets_and_a_missed_one_is_marked() -> None:
    now = T0 + timedelta(minutes=30)
    incident = _incident()  # nobody acknowledged within 15 minutes
    chart = timeline(incident, [_event("detected", 0)], measure(incident, P1, UTC, now), UTC, now)
    respond, recover = chart.targets
    assert (respond.name, respond.breached, recover.name, recover.breached) == ("respond", True, "recover", False)
    assert recover.x == WIDTH - RIGHT  # one hour: the end of the axis
    assert respond.x == pytest.approx(LEFT + (WIDTH - LEFT - RIGHT) / 4, abs=0.1)
    assert chart.now == pytest.approx(LEFT + (WIDTH - LEFT - RIGHT) / 2, abs=0.1)
    assert [p.name for p in chart.phases] == ["detect", "triage"]
    assert chart.ticks[0].label == "09:00" and chart.ticks[-1].label == "10:00"


def test_a_recovered_incident_has_no_now_line() -> None:
    end = T0 + timedelta(minutes=40)
    incident = _incident(status=IncidentStatus.RESOLVED, resolved_at=end,
                         phase_times={"detect": T0, "recover": end})
    chart = timeline(incident, [_event("detected", 0), _event("resolved", 40)],
                     measure(incident, P1, UTC, end + timedelta(days=2)), UTC, end + timedelta(days=2))
    assert chart.now is None and chart.targets[1].breached is False


def test_bars_are_to_scale_and_stacked() -> None:
    chart = stacked_bars({"2026-01": {"P1": 1, "P3": 3}, "2026-02": {"P2": 2}}, ["P1", "P2", "P3", "P4"])
    heights = {b.label: b.height for b in chart.bars}
    assert heights == {"2026-01 P1: 1": 37.5, "2026-01 P3: 3": 112.5, "2026-02 P2: 2": 75.0}
    first, third = chart.bars[0], chart.bars[1]
    assert third.y + third.height == first.y  # P3 on top of P1
    assert chart.top_label == "4" and [t.label for t in chart.ticks] == ["2026-01", "2026-02"]
    assert stacked_bars({}, ["P1"]).bars == []
