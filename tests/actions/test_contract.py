"""The action contract, checked over the whole registry (the way Cloud Custodian tests its docs).

Every action's docstring example is wrapped into a minimal policy and loaded by the real policy
loader, exactly as `remediator check` loads a runbook: its templates stay templates (the loader
checks their references; the plan validates the values an alert brings), everything concrete is
validated into the action's `Params`. Params forbid unknown keys and are immutable, permissions
are declared and look like IAM actions, and the risk is the one the runbook gives the action.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from remediator.actions.base import AnyAction
from remediator.actions.registry import default_registry
from remediator.cli.iam import DATABASE_PRIVILEGE, PERMISSION, database_privileges, iam_policy
from remediator.model import Risk
from remediator.policy.loader import check_params, load_file
from remediator.policy.model import ActionStep

REGISTRY = default_registry()
ACTIONS = list(REGISTRY)
# The runbook's risk per action type: high ones are always held for a person. A new action, or a
# changed risk, is a reviewed change of this table.
EXPECTED_RISK = {
    "notify.webhook": Risk.NORMAL, "ecs.force_new_deployment": Risk.NORMAL, "ecs.scale_service": Risk.NORMAL,
    "ecs.rollback": Risk.HIGH, "waf.block_ip": Risk.NORMAL, "waf.unblock_ip": Risk.NORMAL,
    "rds.failover_cluster": Risk.HIGH, "rds.reboot_instance": Risk.HIGH, "rds.grow_storage": Risk.HIGH,
    "rds.check_snapshots": Risk.NORMAL,
    "elasticache.failover": Risk.HIGH, "elasticache.scale_node_type": Risk.HIGH,
    "elasticache.restore_from_snapshot": Risk.HIGH,
    "s3.preserve_evidence": Risk.NORMAL, "ec2.snapshot_volumes": Risk.NORMAL,
    "ec2.isolate_instance": Risk.HIGH, "ec2.replace_route": Risk.HIGH, "route53.upsert_record": Risk.HIGH,
    "postgres.terminate_idle_connections": Risk.NORMAL, "postgres.cancel_long_queries": Risk.NORMAL,
    "postgres.diagnostics": Risk.NORMAL, "postgres.report": Risk.NORMAL,
    "redis.invalidate_sessions": Risk.HIGH, "redis.diagnostics": Risk.NORMAL,
}
NOT_AWS = {"notify.webhook"}


def example(action: AnyAction) -> dict[str, Any]:
    loaded = yaml.safe_load(action.example_yaml())
    assert isinstance(loaded, dict), f"{action.type_name}: the docstring has no ```yaml example"
    return loaded


def as_policy(action: AnyAction) -> dict[str, Any]:
    """The smallest policy that runs the example step."""
    return {"name": f"example-{action.type_name.replace('.', '-').replace('_', '-')}", "severity": "P3",
            "match": {"source": "alertmanager", "alertname": "ContractExample"}, "actions": [example(action)]}


def test_the_registry_holds_every_action() -> None:
    assert REGISTRY.names() == sorted(EXPECTED_RISK)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_example_loads_through_the_policy_loader(action: AnyAction, tmp_path: Path) -> None:
    step = example(action)
    assert set(step) <= {"type", "params", "guardrails"} and step["type"] == action.type_name
    path = tmp_path / "example.yaml"
    path.write_text(yaml.safe_dump(as_policy(action), sort_keys=False))

    loaded, problems = load_file(path, REGISTRY)

    assert problems == [], f"{action.type_name}: its docstring example does not load: {problems}"
    [(_, policy)] = loaded
    assert policy.actions[0].type == action.type_name and policy.actions[0].params == step["params"]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_the_loader_refuses_an_unknown_parameter(action: AnyAction) -> None:
    step = example(action)
    problems = check_params(ActionStep(type=action.type_name, params={**step["params"], "unexpected": "x"}), REGISTRY)
    assert problems == [f"params.unexpected: unknown parameter of {action.type_name}"]


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_params_forbid_unknown_keys_and_are_frozen(action: AnyAction) -> None:
    assert action.Params.model_config.get("extra") == "forbid"
    assert action.Params.model_config.get("frozen") is True
    with pytest.raises(ValidationError) as raised:
        action.Params.model_validate({"unexpected": "x"})
    assert any(e["type"] == "extra_forbidden" and e["loc"] == ("unexpected",) for e in raised.value.errors())


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_permissions_and_risk(action: AnyAction) -> None:
    assert isinstance(action.risk, Risk)
    assert action.risk is EXPECTED_RISK[action.type_name]
    if action.type_name in NOT_AWS:
        assert action.permissions == ()
        return
    assert action.permissions, f"{action.type_name} declares no IAM permissions"
    assert len(set(action.permissions)) == len(action.permissions)
    for permission in action.permissions:
        assert PERMISSION.match(permission) or DATABASE_PRIVILEGE.match(permission), permission
    for follow_up in action.follow_ups:
        assert follow_up in REGISTRY, f"{action.type_name}: unknown follow-up {follow_up}"


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_public_extension_points_are_documented(action: AnyAction) -> None:
    assert (type(action).__doc__ or "").strip().splitlines()[0]


def test_every_example_together_is_one_valid_runbook(tmp_path: Path) -> None:
    """What `remediator check` would say of a directory holding every example."""
    (tmp_path / "examples.yaml").write_text(yaml.safe_dump({"policies": [as_policy(a) for a in ACTIONS]}))
    loaded, problems = load_file(tmp_path / "examples.yaml", REGISTRY)
    assert problems == [] and len(loaded) == len(ACTIONS)


def test_iam_policy_for_a_couple_of_actions() -> None:
    chosen = [REGISTRY.get("ecs.force_new_deployment"), REGISTRY.get("ecs.scale_service"), REGISTRY.get("waf.block_ip")]
    policy = iam_policy(a for a in chosen if a is not None)

    assert policy == {"Version": "2012-10-17", "Statement": [
        {"Sid": "RemediatorCloudwatch", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"], "Resource": "*"},
        {"Sid": "RemediatorEcs", "Effect": "Allow", "Action": ["ecs:DescribeServices", "ecs:UpdateService"],
         "Resource": "*"},
        {"Sid": "RemediatorWafv2", "Effect": "Allow", "Action": ["wafv2:GetIPSet", "wafv2:UpdateIPSet"],
         "Resource": "*"},
    ]}


def test_iam_policy_of_the_registry_covers_every_permission_once() -> None:
    policy = iam_policy(REGISTRY)
    granted = [name for statement in policy["Statement"] for name in statement["Action"]]
    declared = {p for action in REGISTRY for p in action.permissions if not DATABASE_PRIVILEGE.match(p)}
    assert sorted(granted) == sorted(declared)
    assert all(name.split(":")[0] == s["Sid"].removeprefix("Remediator").lower()
               for s in policy["Statement"] for name in s["Action"])


def test_iam_policy_rejects_a_malformed_permission() -> None:
    class Sloppy:
        type_name = "x.sloppy"
        permissions = ("ecs.UpdateService",)

    with pytest.raises(ValueError, match="not an IAM action"):
        iam_policy([Sloppy()])  # type: ignore[list-item]


def test_database_privileges_are_listed_apart_from_the_iam_document() -> None:
    chosen = [a for a in ACTIONS if a.type_name.startswith(("postgres.", "redis."))]
    assert iam_policy(chosen)["Statement"] == []
    assert database_privileges(chosen) == {
        "postgres": ["CONNECT on the database", "SELECT on what the reports read", "pg_read_all_stats role",
                     "pg_signal_backend role"],
        "redis": ["+info", "+memory|usage", "+scan", "+slowlog|get", "+unlink", "~<session keys> (e.g. ~sess:*)"],
    }


# What an alert would fill the examples' templates with.
TEMPLATE_VALUES = {
    "{labels.ClusterName}": "erp-prod", "{labels.ServiceName}": "erp-api", "{labels.source_ip}": "203.0.113.7",
    "{labels.DBClusterIdentifier}": "erp-db", "{labels.DBInstanceIdentifier}": "erp-db-1",
    "{labels.ReplicationGroupId}": "erp-sessions", "{labels.InstanceId}": "i-0123456789abcdef0",
    "{alert.name}": "HighErrorRate", "{labels.instance}": "erp-api-1", "{labels.datname}": "erp",
    "{annotations.summary}": "5xx above 5 % for 5 minutes", "{labels.user_id}": "nurse-0042",
}
TEMPLATE = re.compile(r"\{[^{}]+\}")


def _filled(value: Any) -> Any:
    if isinstance(value, str):
        return TEMPLATE.sub(lambda m: TEMPLATE_VALUES.get(m.group(0), "x"), value)
    if isinstance(value, list):
        return [_filled(v) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_stored_parameters_validate_back_into_the_same_params(action: AnyAction) -> None:
    # A request stores model_dump(mode="json"); verify and approvals validate it again.
    params = action.Params.model_validate(_filled(example(action)["params"]))
    assert action.Params.model_validate(params.model_dump(mode="json")) == params
