"""elasticache.restore_from_snapshot against moto, through the fault proxy.

moto takes every snapshot as a manual one with no time: the tests play ElastiCache's part on its
backend (an automatic snapshot taken at a given time), as they do for a group still `creating`
(docs/testing-aws.md §2, §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest

from remediator.actions.aws.elasticache_restore import RestoreFromSnapshot
from remediator.actions.base import ActionContext
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from tests.actions.test_elasticache import GROUP, make_group
from tests.support.context import CtxFactory, MotoClient, RecordingTimeline
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

RESTORE = RestoreFromSnapshot()
NEW = "erp-sessions-restored"
RAW: dict[str, Any] = {"replication_group_id": GROUP, "new_replication_group_id": NEW,
                       "security_group_ids": ["sg-0123456789abcdef0"]}


async def snapshot(moto: MotoClient, name: str, taken: datetime, *, source: str = "automated",
                   status: str = "available") -> None:
    await (await moto("elasticache")).create_snapshot(ReplicationGroupId=GROUP, SnapshotName=name)
    made = backend("elasticache").snapshots[name]
    made.snapshot_source, made.snapshot_status = source, status
    made.node_snapshots = [{"cache_cluster_id": f"{GROUP}-001", "node_group_id": "0001", "cache_size": "6 MB",
                            "snapshot_create_time": taken}]


@pytest.fixture
async def snapshots(moto: MotoClient, clock: FakeClock) -> datetime:
    """The group with three automatic snapshots (the newest still being taken) and a newer manual one."""
    await make_group(moto)
    now = clock.now()
    await snapshot(moto, "automatic.erp-sessions-1", now - timedelta(hours=26))
    await snapshot(moto, "automatic.erp-sessions-2", now - timedelta(hours=2))
    await snapshot(moto, "automatic.erp-sessions-3", now - timedelta(minutes=5), status="creating")
    await snapshot(moto, "before-upgrade", now - timedelta(minutes=30), source="manual")
    return now - timedelta(hours=2)


def notes(ctx: ActionContext) -> list[tuple[str, str, Mapping[str, Any]]]:
    assert isinstance(ctx.timeline, RecordingTimeline)
    return ctx.timeline.notes


async def group(moto: MotoClient, name: str = NEW) -> dict[str, Any] | None:
    client = await moto("elasticache")
    try:
        answer = await client.describe_replication_groups(ReplicationGroupId=name)
    except client.exceptions.ReplicationGroupNotFoundFault:
        return None
    return dict(answer["ReplicationGroups"][0])


async def tags(moto: MotoClient, arn: str) -> dict[str, str]:
    answer = await (await moto("elasticache")).list_tags_for_resource(ResourceName=arn)
    return {t["Key"]: t["Value"] for t in answer["TagList"]}


async def test_the_newest_available_automatic_snapshot_becomes_a_new_group(
        snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    params = RESTORE.Params(**RAW)
    ctx = ctx_for(RESTORE, RAW)

    assert await RESTORE.precheck(params, ctx) is None
    execution = await RESTORE.run(params, ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["snapshot_name"] == "automatic.erp-sessions-2"
    assert execution.detail["snapshot_time"] == snapshots.isoformat()
    restored = await group(moto)
    assert restored is not None and restored["CacheNodeType"] == "cache.r7g.large"
    endpoint = restored["NodeGroups"][0]["PrimaryEndpoint"]
    assert execution.detail["endpoint"] == f"{endpoint['Address']}:{endpoint['Port']}"
    assert execution.detail["manual_step"] == (f"point the application at {execution.detail['endpoint']} "
                                               f"(REDIS_HOST) and redeploy it; {GROUP} is left as it was")
    assert (await tags(moto, restored["ARN"]))["remediator:request-id"] == ctx.request.id
    assert proxy.operations().count("CreateReplicationGroup") == 1
    assert await group(moto, GROUP) is not None  # the group that lost its data is untouched


async def test_verify_puts_the_endpoint_on_the_timeline_once_the_group_is_available(
        snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory) -> None:
    execution = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))
    backend("elasticache").replication_groups[NEW].status = "creating"  # what AWS shows for many minutes
    waiting = ctx_for(RESTORE, RAW, execution=execution)

    assert await RESTORE.verify(RESTORE.Params(**RAW), waiting) is False
    assert notes(waiting) == []

    backend("elasticache").replication_groups[NEW].status = "available"
    done = ctx_for(RESTORE, RAW, execution=execution)
    assert await RESTORE.verify(RESTORE.Params(**RAW), done) is True
    [(kind, message, data)] = notes(done)
    assert kind == "restored" and data["endpoint"] == execution.detail["endpoint"]
    assert f"is available at {execution.detail['endpoint']}: point the application at" in message


async def test_a_retried_run_finds_the_group_it_made(snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory,
                                                     proxy: FaultProxy) -> None:
    first = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))
    again = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))

    assert first.detail["already_present"] is False
    assert again.outcome is Outcome.SUCCEEDED and again.detail["already_present"] is True
    assert again.detail["endpoint"] == first.detail["endpoint"]
    assert proxy.operations().count("CreateReplicationGroup") == 1


async def test_a_group_of_that_name_made_by_someone_else_is_never_adopted(
        snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await (await moto("elasticache")).create_replication_group(
        ReplicationGroupId=NEW, ReplicationGroupDescription="a person's restore", Engine="redis")
    execution = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))

    assert execution.reason is FailureReason.CONFLICT and execution.retryable is False
    assert "exists already" in execution.detail["error"]
    assert "CreateReplicationGroup" not in proxy.operations()


async def test_refused_without_an_available_automatic_snapshot(moto: MotoClient, ctx_for: CtxFactory,
                                                               proxy: FaultProxy, clock: FakeClock) -> None:
    await make_group(moto)
    await snapshot(moto, "before-upgrade", clock.now(), source="manual")
    await snapshot(moto, "automatic.erp-sessions-1", clock.now(), status="creating")

    reason = await RESTORE.precheck(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))
    execution = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))

    assert reason == f"{GROUP} has no available automatic snapshot"
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "CreateReplicationGroup" not in proxy.operations() and await group(moto) is None


async def test_refused_when_the_newest_snapshot_is_older_than_max_age(
        snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory) -> None:
    raw = {**RAW, "max_age": "1h"}
    execution = await RESTORE.run(RESTORE.Params(**raw), ctx_for(RESTORE, raw))
    assert execution.reason is FailureReason.PRECHECK_FAILED
    assert "automatic.erp-sessions-2, is 2.0 h old: older than max_age 1.0 h" in execution.detail["error"]
    assert await group(moto) is None


async def test_the_dry_run_plans_the_create_and_changes_nothing(snapshots: datetime, moto: MotoClient,
                                                                ctx_for: CtxFactory) -> None:
    [planned] = await RESTORE.plan_calls(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW, dry_run=True))
    assert planned.operation == "CreateReplicationGroup"
    assert planned.args["SnapshotName"] == "automatic.erp-sessions-2"
    assert planned.args["SecurityGroupIds"] == ["sg-0123456789abcdef0"]
    assert planned.args["ReplicasPerNodeGroup"] == 2 and planned.args["AutomaticFailoverEnabled"] is True
    assert await group(moto) is None


async def test_access_denied_on_create_is_not_retried(snapshots: datetime, moto: MotoClient, ctx_for: CtxFactory,
                                                      proxy: FaultProxy) -> None:
    proxy.add(Rule("CreateReplicationGroup", times=None, status=403, code="AccessDenied"))
    execution = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert [h.status for h in proxy.log if h.operation == "CreateReplicationGroup"] == [403]
    assert await group(moto) is None


async def test_throttled_snapshot_listing_is_retried_by_botocore(snapshots: datetime, moto: MotoClient,
                                                                 ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    proxy.add(Rule("DescribeSnapshots", times=2, code="Throttling"))
    execution = await RESTORE.run(RESTORE.Params(**RAW), ctx_for(RESTORE, RAW))

    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["retry_attempts"] == 2
    assert [h.status for h in proxy.log if h.operation == "DescribeSnapshots"] == [400, 400, 200]


def test_the_new_group_must_be_another_one() -> None:
    with pytest.raises(ValueError, match="must differ"):
        RESTORE.Params(replication_group_id=GROUP, new_replication_group_id=GROUP)
