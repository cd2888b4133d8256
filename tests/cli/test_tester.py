"""`remediator test`: the bundled runbook passes its fixtures, and a wrong expectation says what is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from remediator.actions.registry import default_registry
from remediator.cli.commands import main
from remediator.cli.tester import load_fixtures, run_fixtures
from remediator.policy.loader import load_policies
from remediator.settings import load_settings
from tests.conftest import ROOT

POLICIES = ROOT / "policies"
EXAMPLE_SETTINGS = ROOT / "docs" / "settings.example.yaml"
FIRING = ROOT / "tests" / "data" / "alertmanager-firing.json"  # two PostgresTooManyConnections alerts


POLICY = """
name: pg-connections
severity: P2
match: {source: alertmanager, alertname: PostgresTooManyConnections}
actions:
  - type: notify.webhook
    params: {to: oncall, text: "{annotations.summary}"}
    guardrails: {cooldown: 15m}
"""

CASE = """
cases:
  - name: two-alerts-one-notification
    payload: firing.json
    alerts:
      - name: PostgresTooManyConnections
        severity: P2
        matched: [pg-connections]
        requests:
          - {policy: pg-connections, action: notify.webhook, target: "notify:oncall", verdict: allow,
             reason: allowed, params: {text: "Too many connections on db-1:9187"}}
      - name: PostgresTooManyConnections
        matched: [pg-connections]
        requests:
          - {policy: pg-connections, action: notify.webhook, target: "notify:oncall", verdict: deny, reason: cooldown}
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    (directory / "fixtures").mkdir(parents=True)
    (directory / "pg.yaml").write_text(POLICY)
    shutil.copy(FIRING, directory / "fixtures" / "firing.json")
    return directory


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text("notify: {oncall: {url: 'http://127.0.0.1:9/hook'}}\n")
    return path


def run(config: Path, directory: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--config", str(config), "test", str(directory)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_bundled_runbook_passes_its_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(EXAMPLE_SETTINGS, POLICIES, capsys)
    assert code == 0, out
    assert " 0 failed" in out and not [line for line in out.splitlines() if line.startswith("FAIL")]
    assert "signature not verified" in out  # SNS payloads are there, and the output says how they were read


async def test_every_bundled_policy_is_matched_by_a_fixture_and_every_file_has_fixtures() -> None:
    settings = load_settings(EXAMPLE_SETTINGS, environ={}).model_copy(update={"policies_dir": POLICIES})
    policies = load_policies(POLICIES, default_registry())
    report = await run_fixtures(settings, load_fixtures(POLICIES / "fixtures"), [p.name for p in policies])
    assert not report.failed and report.uncovered == []
    for policy_file in POLICIES.glob("*.yaml"):
        assert (POLICIES / "fixtures" / policy_file.name).is_file(), f"no fixtures for {policy_file.name}"


def test_fixtures_that_hold_pass(policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policy_dir / "fixtures" / "pg.yaml").write_text(CASE)
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 0, out
    assert "ok   " in out and "1 cases: 1 passed, 0 failed" in out


@pytest.mark.parametrize(("change", "message"), [
    (("verdict: deny, reason: cooldown", "verdict: allow"),
     "alerts[1] (PostgresTooManyConnections): requests[0].verdict: expected allow, got deny (cooldown: at most 1"),
    (("reason: allowed, params", "reason: approved, params"),
     "alerts[0] (PostgresTooManyConnections): requests[0].reason: expected approved, got allow (allowed)"),
    (('target: "notify:oncall", verdict: allow', 'target: "notify:dba", verdict: allow'),
     "requests[0].target: expected 'notify:dba', got 'notify:oncall'"),
    (("db-1:9187", "db-9:9187"),
     "requests[0].params.text: expected 'Too many connections on db-9:9187', got 'Too many connections on db-1:9187'"),
    (("severity: P2", "severity: P1"), "alerts[0] (PostgresTooManyConnections): severity: expected P1, got P2"),
    (("matched: [pg-connections]\n        requests:\n          - {policy: pg-connections, action: notify.webhook, "
      'target: "notify:oncall", verdict: deny', "matched: []\n        requests:\n          - {policy: pg-connections, "
      'action: notify.webhook, target: "notify:oncall", verdict: deny'),
     "alerts[1] (PostgresTooManyConnections): matched: expected no policy, got ['pg-connections']"),
])
def test_a_wrong_expectation_fails_and_says_what_differs(
    policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str,
) -> None:
    old, new = change
    assert old in CASE
    (policy_dir / "fixtures" / "pg.yaml").write_text(CASE.replace(old, new, 1))
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 1
    assert "FAIL " in out and "two-alerts-one-notification" in out
    assert message in out, out
    assert "1 cases: 0 passed, 1 failed" in out


def test_a_missing_or_extra_request_is_reported_with_what_was_planned(
    policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (policy_dir / "fixtures" / "pg.yaml").write_text(
        "cases:\n  - name: one\n    payload: firing.json\n"
        "    alerts: [{matched: [pg-connections], requests: []}]\n")
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 1
    assert "the payload holds 2 alert(s) (PostgresTooManyConnections, PostgresTooManyConnections); the case " \
           "expects 1" in out
    assert "requests: expected 0, got 1 (pg-connections: notify.webhook on notify:oncall (allow))" in out


def test_a_notification_to_a_target_the_settings_lack_fails(
    policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    # Dry-run runs no precheck, so without this a policy could notify nobody and every plan look fine.
    (policy_dir / "fixtures" / "pg.yaml").write_text(CASE)
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    code, out, _ = run(empty, policy_dir, capsys)
    assert code == 1
    assert "pg-connections notifies 'oncall', which is not under `notify:` in the settings used" in out


def test_a_report_the_settings_lack_fails(policy_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Dry-run does not run the precheck that refuses it: a misspelt report would pass every plan.
    (policy_dir / "pg.yaml").write_text(POLICY + """  - type: postgres.report
    params: {target: erp-primary, report: patient-data-freshnes}
""")
    (policy_dir / "fixtures" / "pg.yaml").write_text(CASE.replace(
        "params: {text: \"Too many connections on db-1:9187\"}}",
        "params: {text: \"Too many connections on db-1:9187\"}}\n"
        "          - {policy: pg-connections, action: postgres.report, target: \"postgres:erp-primary\", "
        "verdict: allow}").replace("reason: cooldown}", "reason: cooldown}\n"
        "          - {policy: pg-connections, action: postgres.report, target: \"postgres:erp-primary\", "
        "verdict: allow, joined: true}"))
    code, out, _ = run(EXAMPLE_SETTINGS, policy_dir, capsys)
    assert code == 1
    assert ("pg-connections: no report 'patient-data-freshnes' under targets.postgres.erp-primary.reports "
            "(it has: audit-bulk-reads, patient-data-freshness)") in out, out
    assert "1 cases: 0 passed, 1 failed" in out and out.count("requests[") == 0  # the plan itself is as expected


def test_fixture_files_with_problems_are_all_reported_and_exit_1(
    policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    fixtures = policy_dir / "fixtures"
    (fixtures / "a.yaml").write_text(CASE.replace("verdict: allow", "verdict: maybe", 1))
    (fixtures / "b.yaml").write_text(CASE.replace("two-alerts-one-notification", "other")
                                     .replace("firing.json", "missing.json"))
    (fixtures / "c.yaml").write_text("cases:\n  - name: x\n    payload: firing.json\n    alerts: []\n    colour: red\n")
    code, _, err = run(config, policy_dir, capsys)
    assert code == 1
    assert "a.yaml: cases[0].alerts[0].requests[0].verdict: Input should be 'allow', 'deny' or 'hold'" in err
    assert "b.yaml: cases[0] (other).payload: no file" in err
    assert "c.yaml: cases[0].colour: Extra inputs are not permitted" in err


def test_a_directory_without_fixtures_exits_1(policy_dir: Path, config: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(config, policy_dir, capsys)
    assert code == 1 and "no fixture cases" in err


def test_a_payload_that_carries_no_alert_fails_the_case(
    policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (policy_dir / "fixtures" / "firing.json").write_text('{"Type": "SubscriptionConfirmation", "TopicArn": "x"}')
    (policy_dir / "fixtures" / "pg.yaml").write_text(CASE)
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 1 and "not a usable SNS envelope" in out


def test_an_alert_that_joins_its_incidents_request_must_be_expected_so(
    policy_dir: Path, config: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    (policy_dir / "pg.yaml").write_text(POLICY.replace('"{annotations.summary}"', "connections exhausted"))
    joined = CASE.replace('params: {text: "Too many connections on db-1:9187"}',
                          "params: {text: connections exhausted}")
    joined = joined.replace('verdict: deny, reason: cooldown}', "verdict: allow, reason: allowed, joined: true}")
    (policy_dir / "fixtures" / "pg.yaml").write_text(joined)
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 0, out
    (policy_dir / "fixtures" / "pg.yaml").write_text(joined.replace(", joined: true}", "}"))
    code, out, _ = run(config, policy_dir, capsys)
    assert code == 1
    assert "alerts[1] (PostgresTooManyConnections): requests[0].joined: expected a request of its own, got the " \
           "earlier request" in out
