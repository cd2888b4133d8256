"""`remediator simulate`: Alertmanager bodies and SNS envelopes, in dry-run, on state of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from remediator.cli.commands import main
from remediator.cli.simulate import LIVE_STATE_NOT_READ, SNS_UNVERIFIED, PayloadError, render_plan, simulate
from remediator.settings import Settings
from tests.conftest import ROOT, corpus_file

FIRING = ROOT / "tests" / "data" / "alertmanager-firing.json"


POLICIES = """
policies:
  - name: pg-connections
    severity: P2
    match: {source: alertmanager, alertname: PostgresTooManyConnections}
    actions:
      - type: ecs.force_new_deployment
        params: {cluster: erp-prod, service: erp-api}
        guardrails: {cooldown: 30m}
  - name: rds-failover
    severity: P2
    match: {source: eventbridge, labels: {rds_event_id: RDS-EVENT-0049}}
    actions:
      - type: notify.webhook
        params: {to: oncall, text: "{labels.message}"}
"""


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    made = make_settings()
    (made.policies_dir / "policies.yaml").write_text(POLICIES)
    return made


async def test_an_alertmanager_body_is_planned_and_the_second_alert_joins_the_first_request(
    settings: Settings,
) -> None:
    plan = await simulate(settings, FIRING.read_bytes())
    assert plan["payload"] == {"kind": "alertmanager", "note": ""}
    first, second = plan["alerts"]
    assert [(r["action"], r["target"], r["verdict"], r["decision_reason"]) for r in first["requests"]] == [
        ("ecs.force_new_deployment", "ecs:service/erp-prod/erp-api", "allow", "allowed")]
    assert "joined" not in first["requests"][0]
    # One incident, one plan: the second alert joins the request the first one made (as in the daemon).
    assert [(r["action"], r.get("joined")) for r in second["requests"]] == [("ecs.force_new_deployment", True)]
    assert "(joined the incident's earlier request for this plan)" in render_plan(plan)


async def test_an_sns_envelope_is_parsed_without_verifying_its_signature_and_says_so(settings: Settings) -> None:
    body = corpus_file("sns-eventbridge-rds-db-instance-failover.derived.json").read_bytes()
    plan = await simulate(settings, body)
    assert plan["payload"] == {"kind": "sns", "note": SNS_UNVERIFIED}
    (entry,) = plan["alerts"]
    assert entry["alert"]["labels"]["rds_event_id"] == "RDS-EVENT-0049"
    assert entry["matched"] == ["rds-failover"]
    assert entry["requests"][0]["params"]["text"] == "A Multi-AZ failover has completed."


async def test_guardrail_state_is_fresh_each_time_and_never_the_configured_backend(settings: Settings) -> None:
    # A production config names a shared Redis: a simulation must neither read its cooldowns nor
    # spend them (a dry-run "allow" starts a cooldown that would then stop the real daemon).
    production = settings.model_copy(update={"coordination": settings.coordination.model_copy(
        update={"url": "redis://127.0.0.1:1/0"})})
    for _ in range(2):
        plan = await simulate(production, FIRING.read_bytes())
        assert plan["alerts"][0]["requests"][0]["verdict"] == "allow"


@pytest.mark.parametrize("name", ["sns-real-signed-v1-subscription-confirmation.json", "SOURCES.md"])
async def test_a_file_that_carries_no_alert_is_refused(settings: Settings, name: str) -> None:
    with pytest.raises(PayloadError):
        await simulate(settings, corpus_file(name).read_bytes())


def test_the_command_prints_the_note_and_refuses_a_confirmation(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text(f"policies_dir: {settings.policies_dir}\n")
    payload = corpus_file("sns-eventbridge-rds-db-instance-failover.derived.json")
    assert main(["--config", str(config), "simulate", str(payload)]) == 0
    out = capsys.readouterr().out
    assert "sns payload" in out and SNS_UNVERIFIED in out
    confirmation = corpus_file("sns-real-signed-v1-subscription-confirmation.json")
    assert main(["--config", str(config), "simulate", str(confirmation)]) == 1
    assert "carries no alert" in capsys.readouterr().err


async def test_aws_is_never_reached_and_a_plan_that_needs_live_state_says_so(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    (settings.policies_dir / "p.yaml").write_text("""
name: scale-then-tell
severity: P2
match: {alertname: PostgresTooManyConnections}
verify: {after: 10m}
actions:
  - type: ecs.scale_service
    params: {cluster: erp-prod, service: erp-api, step: 2, min: 3, max: 12}
  - type: notify.webhook
    params: {to: oncall, text: later}
""")
    plan = await simulate(settings, FIRING.read_bytes())
    (request,) = plan["alerts"][0]["requests"]  # the next step waits for verification, as in the daemon
    assert (request["action"], request["verdict"], request["outcome"]) == ("ecs.scale_service", "allow", "dry_run")
    assert request["live_state"] == LIVE_STATE_NOT_READ


async def test_offline_checks_run_as_in_the_daemon_and_live_ones_say_they_did_not(
    make_settings: Callable[..., Settings],
) -> None:
    """A block of a never-block address is refused here as enforce refuses it; a rollout whose
    precheck would read the service is planned, saying that live state was not read."""
    settings = make_settings()
    (settings.policies_dir / "p.yaml").write_text("""
name: block-the-sender
severity: P2
match: {alertname: PostgresTooManyConnections}
actions:
  - type: waf.block_ip
    params:
      ip_set_arn: arn:aws:wafv2:us-east-1:123456789012:regional/ipset/erp-blocklist/a1b2c3d4-5678-90ab-cdef-111122223333
      address: 10.0.0.5
      duration: 1h
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: erp-api}
  - type: notify.webhook
    params: {to: nobody-configured, text: hello}
""")
    plan = await simulate(settings, FIRING.read_bytes())
    block, redeploy, notify = plan["alerts"][0]["requests"]
    assert (block["verdict"], block["outcome"], block["failure_reason"]) == ("allow", "failed", "precheck_failed")
    assert "never-block range 10.0.0.0/8" in block["detail"]["error"] and "live_state" not in block
    assert (redeploy["outcome"], redeploy["live_state"]) == ("dry_run", LIVE_STATE_NOT_READ)
    assert (notify["outcome"], notify["failure_reason"]) == ("failed", "precheck_failed")
    assert "no notify target named 'nobody-configured'" in notify["detail"]["error"]
    assert "outcome:  failed (precheck_failed: 10.0.0.5/32 is inside the never-block range" in render_plan(plan)
