"""deploy/: every file parses, names only what exists, and agrees with the image, the settings and policies/."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from remediator.actions.registry import default_registry
from remediator.cli.iam import configured_policy
from remediator.observability import Metrics
from remediator.policy.loader import load_policies
from remediator.policy.model import Policy, RegexName
from remediator.settings import Settings, load_settings, parse_duration
from remediator.sources.sns.confirm import CONFIRM_PERMISSIONS
from remediator.sources.sns.envelope import parse_topic_arn
from tests.conftest import ROOT
from tests.test_dockerfile import final_stage, instructions, the

DEPLOY = ROOT / "deploy"
METRIC = re.compile(r"\b(?:remediator|process)_[a-z0-9_]+\b")


class CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsic functions (!Ref, !Sub ...) read as plain data."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        assert isinstance(node, yaml.MappingNode)
        value = loader.construct_mapping(node, deep=True)
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.load(text, Loader=CloudFormationLoader)  # a SafeLoader with CloudFormation's tags


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml", ".json"))


@pytest.fixture(scope="module")
def policies() -> list[Policy]:
    return load_policies(ROOT / "policies", default_registry())


@pytest.fixture(scope="module")
def task() -> dict[str, Any]:
    document = load(DEPLOY / "ecs-task-definition.json")
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def container(task: dict[str, Any]) -> dict[str, Any]:
    (found,) = task["containerDefinitions"]
    assert isinstance(found, dict)
    return found


@pytest.mark.parametrize("path", deploy_files(), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_deploy_file_parses(path: Path) -> None:
    assert load(path)


SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",)}


def metric_names() -> set[str]:
    """Every series name the daemon's registry can expose, by family type (counters' _total ...)."""
    registry = Metrics(default_registry().names()).registry
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def referenced_metrics() -> dict[str, set[str]]:
    dashboard = load(DEPLOY / "grafana-dashboard.json")
    exprs = {"grafana-dashboard.json": [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]}
    for rules in (DEPLOY / "prometheus" / "rules").glob("*.yml"):
        exprs[rules.name] = [r["expr"] for g in load(rules)["groups"] for r in g["rules"]]
    return {name: {m for e in found for m in METRIC.findall(e)} for name, found in exprs.items()}


def test_dashboard_and_rules_name_only_metrics_the_daemon_has() -> None:
    known = metric_names()
    referenced = referenced_metrics()
    assert referenced["grafana-dashboard.json"] and referenced["remediator.yml"]
    for where, names in referenced.items():
        assert names <= known, f"{where} names metrics the daemon does not expose: {sorted(names - known)}"


def test_the_dashboard_shows_every_metric_family() -> None:
    families = {f.name for f in Metrics(default_registry().names()).registry.collect()
                if f.name.startswith("remediator_")}
    shown = referenced_metrics()["grafana-dashboard.json"]
    missing = [f for f in sorted(families) if not any(name.startswith(f) for name in shown)]
    assert not missing, f"not on the dashboard: {missing}"


SELECTOR = re.compile(r"\b(?P<name>(?:remediator|process)_[a-z0-9_]+|up)\b(?:\{(?P<labels>[^}]*)\})?")
BY_DEPLOYMENT = ('env=~"$env"', 'instance=~"$instance"')


def test_every_dashboard_query_is_filtered_by_the_env_and_instance_selectors() -> None:
    """Two deployments (or tasks) behind one Prometheus: a panel sums only the chosen ones."""
    dashboard = load(DEPLOY / "grafana-dashboard.json")
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert "env" in variables["instance"]["query"]["query"], "the instance list follows the chosen env"
    for name in ("env", "instance"):
        assert variables[name]["type"] == "query"
        assert f", {name})" in variables[name]["query"]["query"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    unfiltered = [(e, m.group()) for e in exprs for m in SELECTOR.finditer(e)
                  if not all(s in (m["labels"] or "") for s in BY_DEPLOYMENT)]
    assert exprs and not unfiltered, f"series read without the env/instance selectors: {unfiltered}"


def test_prometheus_gives_the_daemons_series_the_env_label_the_dashboard_selects() -> None:
    job = next(j for j in load(DEPLOY / "prometheus" / "prometheus.yml")["scrape_configs"]
               if j["job_name"] == "remediator")
    assert {"target_label": "env", "replacement": "prod"} in job["relabel_configs"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (scripts/test installs it)")
def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel's query, with Grafana's variables filled in, is PromQL Prometheus accepts."""
    dashboard = load(DEPLOY / "grafana-dashboard.json")
    exprs = [t["expr"].replace("$env", "prod").replace("$instance", ".+")
             for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                        for i, e in enumerate(exprs)]}]}
    (tmp_path / "dashboard.yml").write_text(yaml.safe_dump(rules))
    checked = subprocess.run(["promtool", "check", "rules", str(tmp_path / "dashboard.yml")],
                             capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_task_health_check_matches_the_image_and_the_settings(container: dict[str, Any]) -> None:
    image_check = the(final_stage(instructions((ROOT / "Dockerfile").read_text())), "HEALTHCHECK").exec_form()
    assert container["healthCheck"]["command"] == ["CMD", *image_check]
    assert "/healthz" in image_check[-1]
    defaults, settings = Settings(), load_settings(None, environ=_environment(container))
    assert [(m["name"], m["containerPort"]) for m in container["portMappings"]] == [
        ("webhooks", defaults.listen.port), ("admin", defaults.admin_listen.port)]
    assert (settings.listen.host, settings.listen.port) == ("0.0.0.0", defaults.listen.port)
    assert (settings.admin_listen.host, settings.admin_listen.port) == ("0.0.0.0", defaults.admin_listen.port)
    exposed = the(final_stage(instructions((ROOT / "Dockerfile").read_text())), "EXPOSE").arguments.split()
    assert exposed == [str(m["containerPort"]) for m in container["portMappings"]]


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """The task's environment, with a stand-in for each secret (what Secrets Manager would inject)."""
    stand_ins = {
        "REMEDIATOR_STORE__URL": "postgresql://remediator@erp-prod-db.internal:5432/remediator",
        "REMEDIATOR_COORDINATION__URL": "rediss://erp-prod-remediator.internal:6379/0",
        "REMEDIATOR_ALERTMANAGER__BEARER_TOKENS": "am-token",
        "REMEDIATOR_API__TOKENS": f"[{{name: alice, sha256: {'a' * 64}, roles: [approver]}}]",
        "REMEDIATOR_API__SESSION_SECRET": "s" * 40,
        "REMEDIATOR_NOTIFY": "{oncall: {url: 'https://x/1'}, dba: {url: 'https://x/2'}, security: {url: 'https://x/3'}}",
    }
    environ = {e["name"]: e["value"] for e in container["environment"]}
    for secret in container["secrets"]:
        assert secret["valueFrom"].startswith("arn:aws:secretsmanager:"), secret
        environ[secret["name"]] = stand_ins[secret["name"]]
    return environ


def test_the_task_environment_is_valid_settings_for_several_tasks(container: dict[str, Any]) -> None:
    settings = load_settings(None, environ=_environment(container))
    assert settings.store.url.startswith("postgresql://")  # shared store: several tasks are safe
    assert settings.coordination.url.startswith(("redis://", "rediss://"))  # shared limits and leases
    assert settings.api.session_secret is not None  # console sessions valid on every task
    assert settings.listen.host == "0.0.0.0"
    secret_names = {s["name"] for s in container["secrets"]}
    assert {"REMEDIATOR_STORE__URL", "REMEDIATOR_COORDINATION__URL", "REMEDIATOR_ALERTMANAGER__BEARER_TOKENS"} \
        <= secret_names
    assert not secret_names & {e["name"] for e in container["environment"]}


def test_ecs_waits_longer_than_the_graceful_stop(container: dict[str, Any]) -> None:
    settings = load_settings(None, environ=_environment(container))
    assert container["stopTimeout"] >= settings.engine.stop_timeout.total_seconds() + 10
    assert container["stopTimeout"] <= 120  # Fargate's maximum
    assert parse_duration(_environment(container).get("REMEDIATOR_ENGINE__STOP_TIMEOUT", "25s")) \
        == settings.engine.stop_timeout


def test_the_task_acts_and_says_how_to_start_in_dry_run(container: dict[str, Any]) -> None:
    assert {"name": "REMEDIATOR_MODE", "value": "enforce"} in container["environment"]
    assert any("dry-run" in label for label in container["dockerLabels"].values())
    assert "REMEDIATOR_MODE" in (DEPLOY / "README.md").read_text() and "dry-run" in (DEPLOY / "README.md").read_text()
    assert container["user"].split(":")[0] not in ("0", "root") and container["readonlyRootFilesystem"] is True
    assert container["logConfiguration"]["logDriver"] == "awslogs"


def test_the_iam_policy_is_what_the_bundled_policies_need(policies: list[Policy]) -> None:
    # The same computation as `remediator actions --iam` (tests/test_cli_actions.py checks the text).
    expected = configured_policy(Settings(policies_dir=ROOT / "policies"), default_registry())
    assert load(DEPLOY / "iam-policy.json") == expected
    assert any(CONFIRM_PERMISSIONS[0] in s["Action"] for s in expected["Statement"])  # the SNS intake's


def test_the_task_trusts_the_templates_topic_in_both_regions_and_may_confirm_it(container: dict[str, Any]) -> None:
    settings = load_settings(None, environ=_environment(container))
    topics = [parse_topic_arn(arn) for arn in settings.sns.topics]
    assert {t.name for t in topics} == {_template()["Resources"]["Topic"]["Properties"]["TopicName"]}
    assert {t.region for t in topics} == {settings.aws.region, "us-east-1"}  # us-east-1: the Route 53 alarm
    assert settings.sns.confirm_method == "ConfirmSubscription"
    statements = load(DEPLOY / "iam-policy.json")["Statement"]
    assert any("sns:ConfirmSubscription" in s["Action"] for s in statements)


def names(policy: Policy) -> set[str]:
    """The alert names a policy matches: its name, or each alternative of its `a|b` regex (which
    must be exactly that: names a template or rule file can be checked against)."""
    name = policy.match.alertname
    if isinstance(name, RegexName):
        alternatives = set(name.regex.split("|"))
        assert all(name.matches(a) and a.replace("-", "").isalnum() for a in alternatives), policy.name
        return alternatives
    assert isinstance(name, str), policy.name
    return {name}


def _template() -> dict[str, Any]:
    document = load(DEPLOY / "sns" / "alarms.yaml")
    assert isinstance(document, dict)
    return document


def test_every_cloudwatch_alarm_a_policy_matches_is_in_the_template(policies: list[Policy]) -> None:
    resources = _template()["Resources"].values()
    alarms = {r["Properties"]["AlarmName"] for r in resources if r["Type"] == "AWS::CloudWatch::Alarm"}
    matched = {name for p in policies if "cloudwatch" in p.match.sources for name in names(p)}
    assert matched <= alarms, sorted(matched - alarms)
    for resource in resources:
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            assert resource["Properties"]["AlarmActions"] == [{"Ref": "Topic"}]


def test_the_template_subscribes_the_daemon_and_forwards_the_events_policies_need() -> None:
    resources = _template()["Resources"]
    subscription = resources["RemediatorSubscription"]["Properties"]
    assert subscription["Protocol"] == "https" and subscription["RawMessageDelivery"] is False
    default_path = Settings().model_dump().get("sns", {}).get("path", "/webhooks/sns")
    assert _template()["Parameters"]["RemediatorEndpoint"]["Default"].endswith(default_path)
    sources = {s for r in resources.values() if r["Type"] == "AWS::Events::Rule"
               for s in r["Properties"]["EventPattern"]["source"]}
    assert {"aws.rds", "aws.ecs", "aws.guardduty", "aws.health", "aws.backup"} <= sources


def test_the_template_passes_cfn_lint() -> None:
    api = pytest.importorskip("cfnlint.api")
    findings = [m for m in api.lint_all((DEPLOY / "sns" / "alarms.yaml").read_text())
                if m.rule.id[0] in ("E", "W")]
    assert not findings, [str(m) for m in findings]


def test_alertmanager_sends_to_the_daemon_with_a_token_file_and_resolved_alerts() -> None:
    config = load(DEPLOY / "alertmanager.yml")
    (receiver,) = [r for r in config["receivers"] if r["name"] == "remediator"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"].endswith(Settings().alertmanager.path)
    assert hook["send_resolved"] is True
    assert hook["http_config"]["authorization"]["type"] == "Bearer"
    assert "credentials_file" in hook["http_config"]["authorization"]
    routes = config["route"]["routes"]
    own = next(r for r in routes if 'component="remediator"' in r["matchers"])
    assert own["receiver"] != "remediator" and not own.get("continue", False)
    assert routes.index(own) == 0  # first, so the daemon never hears of its own alerts


def test_prometheus_scrapes_the_metrics_path_and_loads_both_rule_files() -> None:
    config = load(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "remediator"]
    assert job["metrics_path"] == "/metrics"
    assert job["dns_sd_configs"][0]["port"] == Settings().admin_listen.port  # /metrics is on the admin listener
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).is_file(), rule_file


def test_the_daemons_own_alerts_are_marked_and_cover_the_runbook_of_the_daemon() -> None:
    rules = [r for g in load(DEPLOY / "prometheus" / "rules" / "remediator.yml")["groups"] for r in g["rules"]]
    assert all(r["labels"]["component"] == "remediator" for r in rules)
    exprs = " ".join(r["expr"] for r in rules)
    for metric in ("remediator_webhook_rejected_total", 'result="store_unavailable"', "remediator_backlog",
                   'outcome="failed"', "remediator_approvals_pending", "remediator_sla_breaches_total"):
        assert metric in exprs, metric


def test_every_alertmanager_alert_a_policy_matches_is_a_rule(policies: list[Policy]) -> None:
    erp = load(DEPLOY / "prometheus" / "rules" / "erp.yml")
    alerts = {r["alert"]: r for g in erp["groups"] for r in g["rules"]}
    for policy in (p for p in policies if "alertmanager" in p.match.sources):
        assert names(policy) <= set(alerts), policy.name


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_the_configuration_and_the_rules() -> None:
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "rules/remediator.yml", "rules/erp.yml"]):
        result = subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                                check=False)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_unit_tests_raise_the_store_alerts_when_they_should() -> None:
    # Unfinished requests, deferred audit records, a failing or stalled purge, a store near its budget.
    result = subprocess.run(["promtool", "test", "rules", "tests/remediator-store.yml"], cwd=DEPLOY / "prometheus",
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool is not installed (Debian: prometheus-alertmanager)")
def test_amtool_accepts_the_alertmanager_configuration() -> None:
    result = subprocess.run(["amtool", "check-config", "alertmanager.yml"], cwd=DEPLOY, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr



def test_a_read_only_root_leaves_tmp_writable(task: dict[str, Any], container: dict[str, Any]) -> None:
    # `serve` opens the private socket between the core and its intake processes in a temporary
    # directory: with a read-only root, /tmp must be a volume of its own.
    assert container["readonlyRootFilesystem"] is True
    mounts = {m["containerPath"]: m for m in container["mountPoints"]}
    assert mounts["/tmp"]["readOnly"] is False
    assert mounts["/tmp"]["sourceVolume"] in {v["name"] for v in task["volumes"]}
