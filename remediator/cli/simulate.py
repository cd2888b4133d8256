"""`remediator simulate PAYLOAD`: the full pipeline in dry-run, on a throwaway store, as a plan.

An alert whose plan its incident has requested already joins that request (`joined`), as in the
daemon. A payload is an Alertmanager webhook body or an SNS HTTP(S) envelope (a CloudWatch alarm, an
EventBridge event or an RDS event inside). An SNS envelope's signature is NOT verified here: the
message parsers run on the envelope as given, and the plan says so. The daemon itself verifies
every SNS message before it parses it.

Simulation is offline: AWS, databases and caches are never reached. The checks that need no live
state run as in the daemon (parameters, never-block and protected ranges, target names), so a
request enforce would refuse is refused here too; a precheck that reads live state is skipped,
and an action whose precheck or plan needs live state says so (`live_state`).

Nothing is shared with a running daemon: the store is a temporary SQLite file and guardrail
state (cooldowns, rate limits, budget, leases, kill switch) is in process and starts empty,
whatever the settings name, so a simulation neither sees nor spends production's limits.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from botocore.exceptions import EndpointConnectionError

from remediator.actions.targets import TARGETS_EXTRA, TargetConnections, TargetUnavailable
from remediator.aws.clients import AWS_EXTRA, AwsClients
from remediator.daemon.app import build_deps
from remediator.engine.pipeline import Engine
from remediator.errors import BadRequest
from remediator.model import Alert
from remediator.plaintext import one_line
from remediator.settings import CoordinationSettings, Mode, Settings, StoreSettings
from remediator.sources.alertmanager import parse_alertmanager
from remediator.sources.aws.cloudwatch import InsufficientData
from remediator.sources.sns.envelope import NOTIFICATION, SnsVerificationError, parse_envelope
from remediator.sources.sns.messages import alerts_from_notification
from remediator.web.views import audit_view

LIVE_STATE_NOT_READ = "not read: simulate does not reach AWS, so calls that depend on live state are not shown"
SNS_UNVERIFIED = ("SNS signature not verified: the message parsers ran on the envelope as given "
                  "(the daemon verifies every SNS message before it parses it)")


class PayloadError(ValueError):
    """A payload file that is neither an Alertmanager webhook body nor an SNS notification."""


@dataclass(frozen=True, slots=True)
class Payload:
    """The alerts of a payload file, with what kind of payload it was."""

    kind: str  # "alertmanager" or "sns"
    alerts: list[Alert]
    note: str = ""


class _OfflineClient:
    """Every AWS operation fails as an unreachable endpoint would (an AwsCallError for the action)."""

    def __getattr__(self, operation: str) -> Any:
        async def unreachable(**_: Any) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="offline: remediator simulate does not reach AWS")

        return unreachable


class OfflineTargets(TargetConnections):
    """Databases and caches as `simulate` sees them: named in settings, never connected to."""

    async def postgres(self, name: str) -> Any:
        raise TargetUnavailable("offline: remediator simulate does not connect to databases")

    async def redis(self, name: str) -> Any:
        raise TargetUnavailable("offline: remediator simulate does not connect to caches")


class OfflineAws(AwsClients):
    """AWS clients for simulation: nothing leaves the process, so no credentials are looked for."""

    async def client(self, service: str, region: str | None = None) -> Any:
        return _OfflineClient()


def _is_sns_envelope(body: bytes) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, Mapping) and "TopicArn" in document and "Type" in document


def parse_payload(body: bytes, received_at: datetime,
                  insufficient_data: InsufficientData = InsufficientData.RECORD) -> Payload:
    """Alerts from a payload file; PayloadError says why a file is neither kind."""
    if _is_sns_envelope(body):
        try:
            envelope = parse_envelope(body)
        except SnsVerificationError as exc:
            raise PayloadError(f"not a usable SNS envelope: {exc}") from None
        if envelope.type != NOTIFICATION:
            raise PayloadError(f"an SNS {envelope.type} carries no alert (only a Notification does)")
        alerts = alerts_from_notification(
            envelope.message, topic_arn=envelope.topic_arn, message_id=envelope.message_id,
            subject=envelope.subject, received_at=received_at, insufficient_data=insufficient_data,
        )
        return Payload("sns", alerts, SNS_UNVERIFIED)
    try:
        return Payload("alertmanager", parse_alertmanager(body, received_at))
    except BadRequest as exc:
        raise PayloadError(f"neither an SNS envelope nor an Alertmanager webhook body: {exc.detail}") from None


async def simulate(settings: Settings, body: bytes) -> dict[str, Any]:
    """Run every alert of the payload through correlate → match → plan → guardrails → dry-run."""
    with tempfile.TemporaryDirectory(prefix="remediator-simulate-") as tmp:
        settings = settings.model_copy(update={
            "mode": Mode.DRY_RUN, "store": StoreSettings(url=f"sqlite:///{Path(tmp) / 'simulate.db'}"),
            "coordination": CoordinationSettings(),  # fresh, in process: never production's Redis
        })
        deps = build_deps(settings)
        deps.actions.extras[AWS_EXTRA] = OfflineAws(settings.aws)
        deps.actions.extras[TARGETS_EXTRA] = OfflineTargets(settings.targets)
        deps.actions.live_state = False  # prechecks that read AWS, databases or caches are skipped
        engine = Engine(deps)
        await deps.store.open()
        await deps.coordination.open()
        try:
            payload = parse_payload(body, deps.clock.now())
            alerts = payload.alerts
            await deps.store.record_alerts(alerts, deps.clock.now())
            entries = []
            for alert in alerts:
                await engine.process([alert])
                entries.append(await _describe(deps, engine, alert))
        finally:
            await deps.coordination.close()
            await deps.store.close()
    return {"mode": "dry-run", "policies": len(deps.policies),
            "payload": {"kind": payload.kind, "note": payload.note}, "alerts": entries}


async def _describe(deps: Any, engine: Engine, alert: Alert) -> dict[str, Any]:
    matches = deps.policies.match(alert) if alert.actionable else []
    stored = await deps.store.get_alert(alert.id)
    incidents = [i for i in await deps.store.list_incidents(None, 1000) if i.correlation_key == alert.group_key]
    incident = incidents[0] if incidents else None
    requests: list[dict[str, Any]] = []
    if incident is not None:
        requests = [_request(deps, audit_view(a)) for a in reversed(await deps.store.list_audit(incident.id, 1000))
                    if a.alert_id == alert.id]
        # A plan the incident requested already, for an earlier alert: this alert joined that request.
        for match in matches:
            for planned in engine.plan(match, incident):
                record = await deps.store.get_audit(planned.request.id)
                if record is not None and record.alert_id != alert.id:
                    requests.append({**_request(deps, audit_view(record)), "joined": True})
    return {
        "alert": {"name": alert.name, "status": alert.status.value, "fingerprint": alert.fingerprint,
                  "labels": dict(alert.labels), "recorded": stored is not None},
        "incident": {"id": incident.id, "severity": incident.severity.value, "status": incident.status.value}
        if incident else None,
        "matched": [m.policy.name for m in matches],
        "requests": requests,
    }


def _request(deps: Any, record: Mapping[str, Any]) -> dict[str, Any]:
    request = {k: record[k] for k in ("policy", "action", "target", "params", "verdict", "decision_reason",
                                      "decision_detail", "outcome", "failure_reason", "detail", "plan_hash")}
    action = deps.registry.get(record["action"])
    aws = action is not None and any(":" in p for p in action.permissions)
    unread = "live_state" in record["detail"] or (aws and not record["detail"].get("would_call"))
    if record["outcome"] == "dry_run" and unread:
        request["live_state"] = LIVE_STATE_NOT_READ
    return request


def render_plan(plan: dict[str, Any]) -> str:
    """The plan for a terminal: one line per entry, whatever the payload's values hold."""
    lines = [f"dry-run plan ({plan['policies']} policies loaded, {plan['payload']['kind']} payload)"]
    if plan["payload"]["note"]:
        lines.append(f"note: {plan['payload']['note']}")
    for entry in plan["alerts"]:
        alert, incident = entry["alert"], entry["incident"]
        where = f"incident {incident['id']} ({incident['severity']}, {incident['status']})" if incident else \
            "no incident"
        lines += ["", f"{alert['name']} [{alert['status']}] {alert['fingerprint']} → {where}"]
        lines.append(f"  matched: {', '.join(entry['matched']) or 'no policy'}")
        for r in entry["requests"]:
            lines += _request_lines(r)
    return "".join(one_line(line) + "\n" for line in lines)


def _request_lines(r: Mapping[str, Any]) -> list[str]:
    joined = " (joined the incident's earlier request for this plan)" if r.get("joined") else ""
    lines = [f"  - {r['policy']}: {r['action']} on {r['target'] or '?'}{joined}",
             f"      decision: {r['verdict']} ({r['decision_reason']})"
             + (f" — {r['decision_detail']}" if r["decision_detail"] else "")]
    failure = f" ({r['failure_reason']}: {r['detail'].get('error', '')})" if r.get("failure_reason") else ""
    lines.append(f"      outcome:  {r['outcome']}{failure}")
    lines += [f"      would call {call['service']} {call['operation']} {call['args']}"
              for call in r["detail"].get("would_call", [])]
    if "live_state" in r:
        lines.append(f"      live state {r['live_state']}")
    return lines
