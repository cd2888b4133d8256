"""The console's incident page: where an incident stands (phase, deadlines, roles, the declaration
checklist with who checked what), read only, behind the console's session, escaped."""

from __future__ import annotations

from datetime import timedelta

from tests.support import builders
from tests.web.conftest import DaemonFactory
from tests.web.test_console import _sign_in

POLICIES = """
policies:
  - name: patient-bulk-read
    severity: P1
    match: {alertname: PatientBulkRead}
    actions:
      - {type: test.restart, params: {service: erp-api}}
"""
EVIL = "<script>alert(1)</script>"


async def test_the_incident_page_shows_deadlines_roles_and_who_checked_what(make_daemon: DaemonFactory) -> None:
    d = await make_daemon(POLICIES)
    await d.deliver(builders.alert("PatientBulkRead", fingerprint="fp", group="g", labels={"service": EVIL}))
    [incident] = await d.deps.store.list_incidents()
    page_path = f"/console/incidents/{incident.id}/declaration"
    before = await d.client.get(page_path, allow_redirects=False)
    assert before.status == 303 and before.headers["Location"].startswith("/console/login")  # no session, no page

    base = f"/api/v1/incidents/{incident.id}"
    d.clock.advance(timedelta(hours=1))
    for command, body in (("deadlines", {"deadline": "privacy_regulator", "start": True}),
                          ("roles", {"role": "incident_commander", "person": "alice"}),
                          ("checklist", {"item": "symptoms"})):
        assert (await d.client.post(f"{base}/{command}", headers=d.auth("alice"), json=body)).status == 200
    await _sign_in(d, "victor")
    answer = await d.client.get(page_path)
    text = await answer.text()
    assert answer.status == 200 and "phase <strong>triage</strong>" in text  # its P1 restart waits for approval
    assert "<strong>privacy_regulator</strong>" in text and "due 2026-01-08 09:00 UTC (not met yet)" in text
    assert "인시던트 커맨더 (incident commander): alice" in text
    assert "☑ 증상 확인 (어떤 문제가 발생했는가?) — alice, 2026-01-05 10:00 UTC" in text
    assert "☐ 영향 범위" in text
    assert EVIL not in text and "&lt;script&gt;" in text  # the alert's label, escaped
    assert 'action="/console/incidents' not in text  # read only: changes go through the API or the CLI
    missing = await d.client.get("/console/incidents/INC-2026-99999/declaration")
    assert missing.status == 404 and "No incident INC-2026-99999" in await missing.text()
