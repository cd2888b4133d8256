"""`remediator actions`: the listing, the IAM policy the configured policies need, the README section.

`deploy/iam-policy.json` and the README's actions section are generated; the tests here
regenerate both from what the repository holds now and fail, naming the command to run, when
a policy, an action or the README changed without them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remediator.actions import catalog
from remediator.actions.registry import default_registry
from remediator.cli import commands as cli
from remediator.cli.iam import configured_policy, policy_json, used_actions
from remediator.policy.loader import load_policies
from remediator.settings import Settings
from tests.conftest import ROOT

REGISTRY = default_registry()
IAM_COMMAND = "REMEDIATOR_POLICIES_DIR=policies .venv/bin/remediator actions --iam > deploy/iam-policy.json"

POLICIES = """
policies:
  - name: api-redeploy
    severity: P2
    match: {alertname: ApiDown}
    actions:
      - type: ecs.force_new_deployment
        params: {cluster: erp-prod, service: "{labels.service}"}
      - type: notify.webhook
        params: {to: oncall, text: redeployed}
  - name: block-scanner
    severity: P3
    match: {alertname: WafScanner}
    actions:
      - type: waf.block_ip
        params:
          ip_set_arn: arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/erp-blocklist/a1b2c3d4
          address: "{labels.source_ip}"
          duration: 1h
  - name: db-failover
    enabled: false
    severity: P1
    match: {alertname: DbDown}
    actions:
      - type: rds.failover_cluster
        params: {cluster_id: erp-db}
"""


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def policies_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "runbook.yaml").write_text(POLICIES)
    monkeypatch.delenv("REMEDIATOR_CONFIG", raising=False)
    monkeypatch.setenv("REMEDIATOR_POLICIES_DIR", str(folder))
    return folder


def test_iam_grants_what_the_enabled_policies_use_and_nothing_else(
        policies_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "actions", "--iam")

    assert code == 0
    document: dict[str, Any] = json.loads(out)
    granted = {s["Sid"]: s["Action"] for s in document["Statement"]}
    # ECS and its verify alarm, WAF for the block and for its expiry's unblock, and the daemon's
    # own SNS confirmation; the disabled failover policy grants no RDS permission, and
    # notifications need none.
    assert granted == {
        "RemediatorCloudwatch": ["cloudwatch:DescribeAlarms"],
        "RemediatorEcs": ["ecs:DescribeServices", "ecs:UpdateService"],
        "RemediatorSns": ["sns:ConfirmSubscription"],
        "RemediatorWafv2": ["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
    }
    assert out == policy_json(document)


def test_confirming_by_subscribe_url_needs_no_sns_permission(
        policies_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REMEDIATOR_SNS__CONFIRM_METHOD", "SubscribeURL")
    code, out, _ = run(capsys, "actions", "--iam")
    assert code == 0
    assert "RemediatorSns" not in {s["Sid"] for s in json.loads(out)["Statement"]}


def test_a_block_brings_the_unblock_its_expiry_runs(policies_dir: Path) -> None:
    used = used_actions(load_policies(policies_dir, REGISTRY), REGISTRY)
    assert [a.type_name for a in used] == ["ecs.force_new_deployment", "notify.webhook", "waf.block_ip",
                                           "waf.unblock_ip"]
    for action in REGISTRY:
        for follow_up in action.follow_ups:
            assert follow_up in REGISTRY, f"{action.type_name} names an unknown follow-up {follow_up}"


def test_iam_reports_invalid_policies_instead_of_a_policy(
        policies_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policies_dir / "broken.yaml").write_text("name: x\nseverity: P2\nmatch: {alertname: X}\n"
                                              "actions: [{type: kubectl.delete}]\n")
    code, out, err = run(capsys, "actions", "--iam")
    assert code == 1 and out == ""
    assert "broken.yaml" in err and "unknown action 'kubectl.delete'" in err


def test_iam_of_policies_without_aws_actions_says_it_grants_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "notify.yaml").write_text("name: n\nseverity: P3\nmatch: {alertname: X}\n"
                                          "actions: [{type: notify.webhook, params: {to: oncall, text: hi}}]\n")
    monkeypatch.delenv("REMEDIATOR_CONFIG", raising=False)
    monkeypatch.setenv("REMEDIATOR_POLICIES_DIR", str(tmp_path))
    monkeypatch.setenv("REMEDIATOR_SNS__CONFIRM_METHOD", "SubscribeURL")
    code, out, err = run(capsys, "actions", "--iam")
    assert code == 0 and json.loads(out) == {"Version": "2012-10-17", "Statement": []}
    assert "grants nothing" in err


def test_deploy_iam_policy_is_the_one_the_bundled_policies_need() -> None:
    """Whatever policies/ holds today: a changed policy needs the file regenerated with it."""
    expected = policy_json(configured_policy(Settings(policies_dir=ROOT / "policies"), REGISTRY))
    shipped = ROOT / "deploy" / "iam-policy.json"
    assert shipped.exists(), f"deploy/iam-policy.json is missing: run `{IAM_COMMAND}`"
    assert shipped.read_text(encoding="utf-8") == expected, \
        f"deploy/iam-policy.json differs from what policies/ needs: run `{IAM_COMMAND}` and commit it"


def test_the_listing_shows_every_action_with_risk_permissions_and_parameters(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "actions")

    assert code == 0
    blocks = {block.split()[0]: block for block in out.strip().split("\n\n")}
    assert sorted(blocks) == REGISTRY.names()
    block = blocks["waf.block_ip"]
    assert "(risk: normal)" in block and "permissions: wafv2:GetIPSet, wafv2:UpdateIPSet" in block
    assert "later runs: waf.unblock_ip" in block
    assert any(line.split()[:3] == ["duration", "duration", "required"] for line in block.splitlines())
    assert any(line.split()[:4] == ["allow_prefix", "bool", "default", "false"] for line in block.splitlines())
    assert "(risk: high)" in blocks["rds.failover_cluster"]
    assert "permissions: none (no AWS call)" in blocks["notify.webhook"]


def test_write_readme_replaces_only_the_marked_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{catalog.README_START}\nstale\n{catalog.README_END}\n\n## after\n")

    code, out, _ = run(capsys, "actions", "--markdown", "--write-readme", str(readme))
    assert code == 0 and "updated" in out
    text = readme.read_text()
    assert "stale" not in text and text.startswith("# x\n") and text.endswith(f"{catalog.README_END}\n\n## after\n")
    assert catalog.markdown(REGISTRY) in text
    assert "already up to date" in run(capsys, "actions", "--markdown", "--write-readme", str(readme))[1]

    readme.write_text("# no markers\n")
    code, _, err = run(capsys, "actions", "--markdown", "--write-readme", str(readme))
    assert code == 1 and "markers" in err
    assert run(capsys, "actions", "--write-readme", str(readme))[0] == 2
