"""The console's pictures, as geometry: an incident's timeline and the statistics' bar charts.

Pure functions from the record to coordinates in an SVG `viewBox`; the templates draw them (and
escape every text). Drawn server-side, scaled by the browser: `width=100%` and a fixed viewBox fit
any screen, a 390 px phone included. No JavaScript.

The timeline has one mark per timeline event, in the lane of what it is (alerts, decisions,
actions, approvals, escalations, people), on one time axis with the incident's phases (as a band),
its severity's respond and recover targets (as lines; red once missed) and, while it is open, now.
The axis always reaches both targets: the picture says how far along the incident is against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from remediator.incidents.lifecycle import PHASE_ORDER, Targets, recovered_at
from remediator.model import Incident, TimelineEvent

WIDTH = 560
LEFT, RIGHT = 84, 12  # the lane names' column; room for the last mark
TOP = 30  # the axis' labels above the phase band
BAND = 20  # the phase band's height
LANE = 28
LANES = ("alerts", "decisions", "actions", "approvals", "escalations", "people", "other")
_KINDS = {
    "alerts": {"detected", "matched", "alert_firing", "alert_resolved", "observed", "resolved", "severity_raised"},
    "decisions": {"decided"},
    "actions": {"executed", "verified", "not_recovered"},
    "escalations": {"escalated"},
    "people": {"acknowledged", "note", "root_cause", "closed"},
}
MIN_SPAN = timedelta(minutes=1)


def lane_of(event: TimelineEvent) -> str:
    """Which lane an event belongs in; what an action wrote (diagnostics, reports) is an action's."""
    if event.kind.startswith("approval_"):
        return "approvals"
    for lane, kinds in _KINDS.items():
        if event.kind in kinds:
            return lane
    return "actions" if event.request_id else "other"


@dataclass(frozen=True, slots=True)
class Mark:
    index: int  # the event's row in the table below the picture
    x: float
    y: float
    lane: str
    kind: str
    label: str  # the tooltip: time, kind and message


@dataclass(frozen=True, slots=True)
class Span:
    x: float
    width: float
    name: str


@dataclass(frozen=True, slots=True)
class Line:
    x: float
    name: str
    label: str
    breached: bool
    row: int  # labels of lines close together go on separate rows


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Timeline:
    height: int
    lanes: Sequence[tuple[str, float]]
    band_y: int
    phases: Sequence[Span]
    targets: Sequence[Line]
    ticks: Sequence[Tick]
    marks: Sequence[Mark]
    now: float | None  # where now is, while the incident is open
    width: int = WIDTH
    left: int = LEFT


class _Axis:
    def __init__(self, start: datetime, end: datetime) -> None:
        self.start, self.span = start, max(end - start, MIN_SPAN)

    def x(self, at: datetime) -> float:
        share = (at - self.start) / self.span
        return round(LEFT + min(max(share, 0.0), 1.0) * (WIDTH - LEFT - RIGHT), 1)

    def ticks(self, zone: ZoneInfo, count: int = 4) -> list[Tick]:
        fmt = "%H:%M" if self.span <= timedelta(days=1) else "%m-%d %H:%M"
        moments = [self.start + self.span * i / count for i in range(count + 1)]
        return [Tick(self.x(m), m.astimezone(zone).strftime(fmt)) for m in moments]


def timeline(incident: Incident, events: Sequence[TimelineEvent], targets: Targets, zone: ZoneInfo,
             now: datetime) -> Timeline:
    """The picture of one incident: phases, targets and one mark per event."""
    start = min([incident.opened_at, *(e.at for e in events)])
    last = max([recovered_at(incident) or now, *(e.at for e in events)])
    axis = _Axis(start, max(last, targets.respond_due, targets.recover_due))
    used = [lane for lane in LANES if any(lane_of(e) == lane for e in events)] or ["alerts"]
    lane_y = {lane: TOP + BAND + 12 + LANE * i + LANE / 2 for i, lane in enumerate(used)}
    height = int(TOP + BAND + 12 + LANE * len(used) + 34)
    return Timeline(height, [(lane, y) for lane, y in lane_y.items()], TOP, _phases(incident, axis, last),
                    _targets(targets, axis), axis.ticks(zone), _marks(events, axis, lane_y, zone),
                    axis.x(now) if recovered_at(incident) is None else None)


def _phases(incident: Incident, axis: _Axis, end: datetime) -> list[Span]:
    order = {phase.value: i for i, phase in enumerate(PHASE_ORDER)}
    reached = sorted(((at, name) for name, at in incident.phase_times.items()),
                     key=lambda p: (p[0], order.get(p[1], 9)))
    spans = []
    for i, (at, name) in enumerate(reached):
        until = reached[i + 1][0] if i + 1 < len(reached) else end
        x = axis.x(at)
        spans.append(Span(x, max(axis.x(until) - x, 2.0), name))
    return spans


def _targets(targets: Targets, axis: _Axis) -> list[Line]:
    respond, recover = axis.x(targets.respond_due), axis.x(targets.recover_due)
    return [Line(respond, "respond", f"respond by {targets.respond_due:%Y-%m-%d %H:%M} UTC", targets.respond_breached,
                 0),
            Line(recover, "recover", f"recover by {targets.recover_due:%Y-%m-%d %H:%M} UTC", targets.recover_breached,
                 1 if abs(recover - respond) < 70 else 0)]


def _marks(events: Sequence[TimelineEvent], axis: _Axis, lane_y: Mapping[str, float], zone: ZoneInfo) -> list[Mark]:
    marks: list[Mark] = []
    last_x: dict[str, tuple[float, int]] = {}
    for index, event in enumerate(events):
        lane, x = lane_of(event), axis.x(event.at)
        previous = last_x.get(lane)
        crowd = previous[1] + 1 if previous and x - previous[0] < 8 else 0
        last_x[lane] = (x, crowd)
        offset = (0, -7, 7)[crowd % 3]  # marks at the same moment side by side, not on top of each other
        label = f"{event.at.astimezone(zone):%Y-%m-%d %H:%M:%S} {event.kind}: {event.message}"
        marks.append(Mark(index, x, lane_y[lane] + offset, lane, event.kind, label[:500]))
    return marks


# -- statistics --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    series: str  # the severity: the bar's colour
    label: str


@dataclass(frozen=True, slots=True)
class BarChart:
    height: int
    bars: Sequence[Bar]
    ticks: Sequence[Tick]  # the categories under the bars
    top_label: str  # the scale's maximum
    width: int = 400
    base: int = 170


def stacked_bars(rows: Mapping[str, Mapping[str, float]], series: Sequence[str], unit: str = "") -> BarChart:
    """One stacked bar per row (e.g. a month), one segment per series (e.g. severity)."""
    chart_w, base, tall = 400, 170, 150
    top = max((sum(row.get(s, 0) for s in series) for row in rows.values()), default=0) or 1
    slot = (chart_w - 40) / max(len(rows), 1)
    bars, ticks = [], []
    for i, (name, row) in enumerate(rows.items()):
        x, y = 40 + slot * i + slot * 0.15, float(base)
        for s in series:
            value = row.get(s, 0)
            if not value:
                continue
            h = tall * value / top
            y -= h
            bars.append(Bar(round(x, 1), round(y, 1), round(slot * 0.7, 1), round(h, 1), s,
                            f"{name} {s}: {_number(value)}{unit}"))
        ticks.append(Tick(round(x + slot * 0.35, 1), name))
    return BarChart(200, bars, ticks, f"{_number(top)}{unit}")


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
