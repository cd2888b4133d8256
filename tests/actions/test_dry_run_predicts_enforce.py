"""Dry-run predicts enforce: the same alerts, through the whole in-process daemon once in each mode
(AWS is moto behind the fault proxy), are decided and recorded alike — verdict, decision reason,
outcome class (dry_run stands for succeeded) and failure reason.

Two sets: a table of hostile parameters (never-block and protected addresses, values out of range,
targets that do not exist) and the bundled runbook's fixture payloads, under the example settings.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.cli.simulate import parse_payload
from remediator.model import AuditRecord, Outcome
from tests.actions import test_waf
from tests.actions.conftest import post_alert
from tests.conftest import ROOT
from tests.support.context import MotoClient
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.faultproxy import FaultProxy
from tests.support.moto import create_erp_api
from tests.support.receiver import Receiver, running_receiver

# Row: name, action type, params (YAML flow, {arn} is a WAF IP set in moto), alert labels, and what
# both modes must record: verdict, decision reason, outcome class, failure reason.
ROWS: list[tuple[str, str, str, dict[str, str], tuple[str, str, str, str | None]]] = [
    ("loopback", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}', {"ip": "127.0.0.1"},
     ("allow", "allowed", "failed", "precheck_failed")),
    ("link-local", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "169.254.169.254"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("ipv6 loopback", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}', {"ip": "::1"},
     ("allow", "allowed", "failed", "precheck_failed")),
    ("rfc1918 10/8", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "10.1.2.3"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("rfc1918 172.16/12", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "172.20.0.5"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("rfc1918 192.168/16", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "192.168.7.7"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("protected range", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "198.51.100.9"}, ("deny", "protected_target", "not_run", None)),
    ("duration over aws.waf.max_duration", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", '
     "duration: 8d}", {"ip": "203.0.113.8"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("duration out of range", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", '
     'duration: "{labels.for}"}', {"ip": "203.0.113.9", "for": "45d"}, ("deny", "invalid_params", "not_run", None)),
    ("not an address", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "203.0.113.9; drop"}, ("deny", "invalid_params", "not_run", None)),
    ("a range without allow_prefix", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "203.0.113.0/24"}, ("deny", "invalid_params", "not_run", None)),
    ("an IP set that does not exist", "waf.block_ip", '{ip_set_arn: "{missing_arn}", address: "{labels.ip}", '
     "duration: 1h}", {"ip": "203.0.113.10"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("a public address", "waf.block_ip", '{ip_set_arn: "{arn}", address: "{labels.ip}", duration: 1h}',
     {"ip": "203.0.113.7"}, ("allow", "allowed", "succeeded", None)),
    ("scale step out of range", "ecs.scale_service", '{cluster: erp-prod, service: erp-api, step: "{labels.step}", '
     "min: 1, max: 4}", {"step": "500"}, ("deny", "invalid_params", "not_run", None)),
    ("an ECS service that does not exist", "ecs.force_new_deployment", '{cluster: erp-prod, service: "{labels.svc}"}',
     {"svc": "erp-nowhere"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("an ECS service that exists", "ecs.force_new_deployment", '{cluster: erp-prod, service: "{labels.svc}"}',
     {"svc": "erp-api"}, ("allow", "allowed", "succeeded", None)),
    ("an unknown database", "postgres.terminate_idle_connections", '{target: "{labels.db}", database: erp}',
     {"db": "erp-nowhere"}, ("allow", "allowed", "failed", "precheck_failed")),
    ("an unknown database, diagnostics", "postgres.diagnostics", '{target: "{labels.db}"}', {"db": "erp-nowhere"},
     ("allow", "allowed", "failed", "precheck_failed")),
    ("an unknown cache", "redis.diagnostics", '{target: "{labels.cache}"}', {"cache": "sessions"},
     ("allow", "allowed", "failed", "precheck_failed")),
    ("an unknown notify target", "notify.webhook", '{to: "{labels.team}", text: hello}', {"team": "pharmacy"},
     ("allow", "allowed", "failed", "precheck_failed")),
    ("no forensics bucket", "s3.preserve_evidence", "{source_bucket: erp-alb-logs, prefix: alb/, lookback: 1h}", {},
     ("allow", "allowed", "failed", "precheck_failed")),
]
OUTCOME_CLASS = {Outcome.DRY_RUN: "succeeded"}


def policies(arn: str) -> str:
    documents = []
    for index, (_, action, params, _, _) in enumerate(ROWS):
        filled = params.replace('"{missing_arn}"', f'"{arn[:-8]}00000000"').replace('"{arn}"', f'"{arn}"')
        documents.append(f"name: row-{index}\nseverity: P3\nmatch: {{source: alertmanager, alertname: Row{index}}}\n"
                         f"actions:\n  - type: {action}\n    params: {filled}\n")
    return "---\n".join(documents)


def outcome_of(record: AuditRecord) -> tuple[str, str, str, str | None]:
    failure = record.failure_reason.value if record.failure_reason is not None else None
    return (record.verdict.value, record.decision_reason.value, OUTCOME_CLASS.get(record.outcome, record.outcome.value),
            failure)


def by_plan(records: Sequence[AuditRecord]) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    return {(r.policy, r.action, r.target): (*outcome_of(r), r.detail.get("error")) for r in records}


SETTINGS = {"guardrails": {"protected": [{"action": "waf.*", "targets": ["198.51.100.0/24"], "reason": "VPN"}]}}


async def test_hostile_parameters_are_recorded_alike_in_dry_run_and_enforce(
        moto: MotoClient, aws_daemon: DaemonFactory, proxy: FaultProxy, tmp_path: Path) -> None:
    arn = await test_waf.make_ip_set(moto)
    await create_erp_api(await moto("ecs"))
    recorded: dict[str, list[AuditRecord]] = {}
    for mode in ("dry-run", "enforce"):  # dry-run first: enforce changes moto
        daemon: Daemon = await aws_daemon(policies(arn), mode=mode, store={"url": f"sqlite:///{tmp_path / mode}.db"},
                                          **SETTINGS)
        for index, (_, _, _, labels, _) in enumerate(ROWS):
            await post_alert(daemon, f"Row{index}", labels, fingerprint=f"fp-{index}", starts_at=daemon.clock.now())
        recorded[mode] = sorted(await daemon.deps.store.list_audit(), key=lambda r: int(r.policy.split("-")[1]))

    assert by_plan(recorded["dry-run"]) == by_plan(recorded["enforce"])
    expected = {f"row-{index}": (name, row[-1]) for index, (name, *row) in enumerate(ROWS)}
    for record in recorded["dry-run"]:
        name, wanted = expected[record.policy]
        assert outcome_of(record) == wanted, f"{name}: {record.decision_detail} {record.detail}"
    assert [r.policy for r in recorded["dry-run"]] == [f"row-{i}" for i in range(len(ROWS))]
    never_block = recorded["dry-run"][0]
    assert never_block.mode == "dry-run" and "never-block range 127.0.0.0/8" in never_block.detail["error"]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as r:
        yield r


def example_settings(receiver: Receiver, proxy: FaultProxy) -> dict[str, Any]:
    """docs/settings.example.yaml with its notify targets at the receiver and AWS at moto."""
    example: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "settings.example.yaml").read_text())
    for name in ("mode", "listen", "store", "policies_dir", "alertmanager", "log", "intake", "sns"):
        example.pop(name)
    for target in example["notify"].values():
        target["url"] = receiver.url
    example["aws"]["endpoint_url"], example["aws"]["max_attempts"] = proxy.url, 2
    example["engine"]["timer_interval"] = "1d"
    return example


def fixture_payloads() -> list[Path]:
    cases = [case for path in sorted((ROOT / "policies" / "fixtures").glob("*.yaml"))
             for case in yaml.safe_load(path.read_text())["cases"]]
    return [ROOT / "policies" / "fixtures" / case["payload"] for case in cases]


async def test_the_bundled_fixtures_are_recorded_alike_in_dry_run_and_enforce(
        aws_daemon: DaemonFactory, proxy: FaultProxy, receiver: Receiver, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERP_PRIMARY_DSN", raising=False)  # the example's database: its DSN is not set
    (tmp_path / "policies").mkdir()
    for path in (ROOT / "policies").glob("*.yaml"):
        shutil.copy(path, tmp_path / "policies" / f"bundled-{path.name}")
    placeholder = ("name: placeholder\nseverity: P4\nmatch: {alertname: NeverSent}\n"
                   "actions: [{type: notify.webhook, params: {to: oncall, text: x}}]\n")
    recorded: dict[str, list[AuditRecord]] = {}
    for mode in ("dry-run", "enforce"):
        daemon: Daemon = await aws_daemon(placeholder, mode=mode, store={"url": f"sqlite:///{tmp_path / mode}.db"},
                                          **example_settings(receiver, proxy))
        for payload in fixture_payloads():
            await daemon.engine.record(parse_payload(payload.read_bytes(), daemon.clock.now()).alerts)
            await daemon.engine.drain()
        recorded[mode] = await daemon.deps.store.list_audit(None, 10_000)

    assert len(recorded["dry-run"]) >= 20
    assert by_plan(recorded["dry-run"]) == by_plan(recorded["enforce"])
    assert {r.mode for r in recorded["dry-run"]} == {"dry-run"}
    assert len(receiver.received) > 0  # enforce posted its notifications; dry-run posted none of them
