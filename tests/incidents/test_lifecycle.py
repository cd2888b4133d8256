"""An incident's life as the runbook defines it, moved by the daemon and by people."""

from __future__ import annotations

from datetime import timedelta

from remediator.incidents.lifecycle import Close
from remediator.model import Phase, Severity
from tests.conftest import T0
from tests.support import builders
from tests.support.engine import HarnessFactory

POLICIES = """
policies:
  - name: api-errors-notify
    severity: P3
    match: {alertname: ApiErrors}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "API errors"}
  - name: api-errors-restart
    severity: P2
    match: {alertname: ApiErrors}
    actions:
      - type: test.restart
        params: {service: erp-api}
    verify: {after: 5m}
  - name: api-down
    severity: P1
    match: {alertname: ApiDown}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "API down"}
"""
NO_HOLDS: dict[str, list[str]] = {"hold_severities": []}


async def test_every_phase_is_reached_and_stamped_by_whoever_moved_it(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(builders.alert("ApiErrors", fingerprint="fp-err", group="api"))
    [incident] = await h.deps.store.list_incidents()
    # Two policies matched: the incident takes the higher severity of the two.
    assert incident.severity is Severity.P2
    # Matched → triage; the restart succeeded → contain.
    assert incident.phase is Phase.CONTAIN
    assert set(incident.phase_times) == {"detect", "triage", "contain"}

    h.clock.advance(timedelta(minutes=3))
    await h.deliver(builders.alert("ApiErrors", fingerprint="fp-err", group="api", status="resolved"))
    await h.tick(timedelta(minutes=2))  # the verification, 5 minutes after the restart
    verified = await h.deps.store.get_incident(incident.id)
    assert verified is not None and verified.phase is Phase.VERIFY
    assert verified.phase_times["recover"] == T0 + timedelta(minutes=3)
    assert verified.phase_times["verify"] == T0 + timedelta(minutes=5)

    effect = await h.deps.store.apply_incident_command(incident.id, Close("alice", "verified with ward 4"),
                                                       T0 + timedelta(minutes=30))
    assert effect is not None and effect.incident.phase is Phase.CLOSED
    assert list(effect.incident.phase_times) == ["detect", "triage", "contain", "recover", "verify", "closed"]


async def test_a_later_alert_raises_the_severity_and_says_so(make_harness: HarnessFactory) -> None:
    h = await make_harness(POLICIES, guardrails=NO_HOLDS)
    await h.deliver(builders.alert("ApiErrors", fingerprint="fp-err", group="api"))
    h.clock.advance(timedelta(minutes=4))
    await h.deliver(builders.alert("ApiDown", fingerprint="fp-down", group="api", starts_at=h.clock.now()))
    [incident] = await h.deps.store.list_incidents()
    assert incident.severity is Severity.P1 and incident.alert_count == 2
    [raised] = [e for e in await h.deps.store.timeline(incident.id) if e.kind == "severity_raised"]
    assert raised.message == "severity raised P2 → P1"
    # A later, less severe alert never lowers it.
    await h.deliver(builders.alert("ApiErrors", fingerprint="fp-err2", group="api", starts_at=h.clock.now()))
    still = await h.deps.store.get_incident(incident.id)
    assert still is not None and still.severity is Severity.P1
