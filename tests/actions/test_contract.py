"""The action contract, checked over the whole registry (the way Cloud Custodian tests its docs).

Every action: Params forbid unknown keys and are immutable, permissions are declared and look
like IAM actions, the risk is the one the runbook gives it, and the docstring's YAML example is
a valid policy step once its templates are filled. Later this loads through the policy loader.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from remediator.actions.base import AnyAction
from remediator.actions.registry import default_registry
from remediator.iam import PERMISSION, iam_policy
from remediator.model import Risk

REGISTRY = default_registry()
ACTIONS = list(REGISTRY)
TEMPLATE = re.compile(r"\{[^{}]+\}")
# What an alert would fill the examples' templates with.
TEMPLATE_VALUES = {
    "{labels.ClusterName}": "erp-prod",
    "{labels.ServiceName}": "erp-api",
    "{labels.source_ip}": "203.0.113.7",
    "{labels.DBClusterIdentifier}": "erp-db",
    "{labels.DBInstanceIdentifier}": "erp-db-1",
    "{labels.ReplicationGroupId}": "erp-sessions",
    "{labels.InstanceId}": "i-0123456789abcdef0",
    "{alert.name}": "HighErrorRate",
    "{labels.instance}": "erp-api-1",
    "{annotations.summary}": "5xx above 5 % for 5 minutes",
}
# The runbook's risk per action type: high ones are always held for a person.
EXPECTED_RISK = {
    "notify.webhook": Risk.NORMAL, "ecs.force_new_deployment": Risk.NORMAL, "ecs.scale_service": Risk.NORMAL,
    "ecs.rollback": Risk.HIGH, "waf.block_ip": Risk.NORMAL, "waf.unblock_ip": Risk.NORMAL,
    "rds.failover_cluster": Risk.HIGH, "rds.reboot_instance": Risk.HIGH, "rds.grow_storage": Risk.HIGH,
    "elasticache.failover": Risk.HIGH, "s3.preserve_evidence": Risk.NORMAL, "ec2.snapshot_volumes": Risk.NORMAL,
    "ec2.isolate_instance": Risk.HIGH, "route53.upsert_record": Risk.HIGH,
}
NOT_AWS = {"notify.webhook"}


def fill(value: Any) -> Any:
    if isinstance(value, str):
        for template in TEMPLATE.findall(value):
            assert template in TEMPLATE_VALUES, f"add {template} to TEMPLATE_VALUES"
        return TEMPLATE.sub(lambda m: TEMPLATE_VALUES[m.group(0)], value)
    if isinstance(value, list):
        return [fill(v) for v in value]
    if isinstance(value, dict):
        return {k: fill(v) for k, v in value.items()}
    return value


def example(action: AnyAction) -> dict[str, Any]:
    loaded = yaml.safe_load(action.example_yaml())
    assert isinstance(loaded, dict), f"{action.type_name}: the docstring has no ```yaml example"
    return loaded


def example_params(action: AnyAction) -> dict[str, Any]:
    return dict(fill(example(action)["params"]))


def test_the_registry_holds_every_action() -> None:
    assert REGISTRY.names() == sorted(EXPECTED_RISK)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_example_is_a_valid_policy_step(action: AnyAction) -> None:
    step = example(action)
    assert set(step) == {"type", "params"}
    assert step["type"] == action.type_name
    params = action.Params.model_validate(example_params(action))
    assert action.target(params)


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_params_forbid_unknown_keys_and_are_frozen(action: AnyAction) -> None:
    raw = example_params(action)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        action.Params.model_validate({**raw, "unexpected": "x"})
    params = action.Params.model_validate(raw)
    first_field = next(iter(action.Params.model_fields))
    with pytest.raises(ValidationError, match="frozen"):
        setattr(params, first_field, getattr(params, first_field))


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_permissions_and_risk(action: AnyAction) -> None:
    assert action.risk is EXPECTED_RISK[action.type_name]
    if action.type_name in NOT_AWS:
        return
    assert action.permissions, f"{action.type_name} declares no IAM permissions"
    assert len(set(action.permissions)) == len(action.permissions)
    for permission in action.permissions:
        assert PERMISSION.match(permission), permission


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_public_extension_points_are_documented(action: AnyAction) -> None:
    assert (type(action).__doc__ or "").strip().splitlines()[0]


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
    declared = {p for action in REGISTRY for p in action.permissions}
    assert sorted(granted) == sorted(declared)
    assert all(name.split(":")[0] == s["Sid"].removeprefix("Remediator").lower()
               for s in policy["Statement"] for name in s["Action"])


def test_iam_policy_rejects_a_malformed_permission() -> None:
    class Sloppy:
        type_name = "x.sloppy"
        permissions = ("ecs.UpdateService",)

    with pytest.raises(ValueError, match="not an IAM action"):
        iam_policy([Sloppy()])  # type: ignore[list-item]
