"""`remediator simulate PAYLOAD`: the full pipeline in dry-run, on a throwaway store, as a plan."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from remediator.app import build_deps
from remediator.engine import Engine
from remediator.errors import BadRequest
from remediator.model import Alert
from remediator.settings import Mode, Settings, StoreSettings
from remediator.sources.alertmanager import parse_alertmanager
from remediator.web.views import audit_view


def parse_payload(body: bytes, received_at: datetime) -> list[Alert]:
    """Alerts from a payload file (an Alertmanager webhook body)."""
    try:
        return parse_alertmanager(body, received_at)
    except BadRequest as exc:
        raise SystemExit(f"remediator: the payload is not an Alertmanager webhook body: {exc.detail}") from None


async def simulate(settings: Settings, body: bytes) -> dict[str, Any]:
    """Run every alert of the payload through correlate → match → plan → guardrails → dry-run."""
    with tempfile.TemporaryDirectory(prefix="remediator-simulate-") as tmp:
        settings = settings.model_copy(update={
            "mode": Mode.DRY_RUN, "store": StoreSettings(url=f"sqlite:///{Path(tmp) / 'simulate.db'}"),
        })
        deps = build_deps(settings)
        engine = Engine(deps)
        await deps.store.open()
        await deps.coordination.open()
        try:
            alerts = parse_payload(body, deps.clock.now())
            await deps.store.record_alerts(alerts, deps.clock.now())
            entries = []
            for alert in alerts:
                await engine.process([alert])
                entries.append(await _describe(deps, alert))
        finally:
            await deps.coordination.close()
            await deps.store.close()
    return {"mode": "dry-run", "policies": len(deps.policies), "alerts": entries}


async def _describe(deps: Any, alert: Alert) -> dict[str, Any]:
    matches = deps.policies.match(alert) if alert.actionable else []
    stored = await deps.store.get_alert(alert.id)
    incidents = [i for i in await deps.store.list_incidents(None, 1000) if i.correlation_key == alert.group_key]
    incident = incidents[0] if incidents else None
    requests = []
    if incident is not None:
        requests = [audit_view(a) for a in reversed(await deps.store.list_audit(incident.id, 1000))
                    if a.alert_id == alert.id]
    return {
        "alert": {"name": alert.name, "status": alert.status.value, "fingerprint": alert.fingerprint,
                  "labels": dict(alert.labels), "recorded": stored is not None},
        "incident": {"id": incident.id, "severity": incident.severity.value, "status": incident.status.value}
        if incident else None,
        "matched": [m.policy.name for m in matches],
        "requests": [{k: r[k] for k in ("policy", "action", "target", "params", "verdict", "decision_reason",
                                        "decision_detail", "outcome", "detail", "plan_hash")} for r in requests],
    }


def render_plan(plan: dict[str, Any]) -> str:
    lines = [f"dry-run plan ({plan['policies']} policies loaded)"]
    for entry in plan["alerts"]:
        alert, incident = entry["alert"], entry["incident"]
        where = f"incident {incident['id']} ({incident['severity']}, {incident['status']})" if incident else \
            "no incident"
        lines.append(f"\n{alert['name']} [{alert['status']}] {alert['fingerprint']} → {where}")
        lines.append(f"  matched: {', '.join(entry['matched']) or 'no policy'}")
        for r in entry["requests"]:
            lines.append(f"  - {r['policy']}: {r['action']} on {r['target'] or '?'}")
            lines.append(f"      decision: {r['verdict']} ({r['decision_reason']})"
                         + (f" — {r['decision_detail']}" if r["decision_detail"] else ""))
            lines.append(f"      outcome:  {r['outcome']}")
            for call in r["detail"].get("would_call", []):
                lines.append(f"      would call {call['service']} {call['operation']} {call['args']}")
    return "\n".join(lines) + "\n"
