"""rds.check_snapshots against moto, through the fault proxy.

moto takes every snapshot at once; the tests set when each was taken (and which is still being
taken) on its backend, the part of RDS that moto does not play (docs/testing-aws.md §2).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.rds_snapshots import CheckSnapshots
from remediator.actions.base import ActionContext
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from tests.actions.test_rds import CLUSTER, make_cluster, make_instance
from tests.support.context import CtxFactory, MotoClient, RecordingTimeline
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

CHECK = CheckSnapshots()
INSTANCE = "erp-db-single"
RAW: dict[str, Any] = {"instance_id": INSTANCE, "max_age": "26h"}


def taken(snapshot: Any, at: datetime, status: str = "available") -> None:
    snapshot.created = at.astimezone(UTC).replace(tzinfo=None)  # moto keeps naive UTC
    snapshot.status = status


def automated_of(snapshots: Mapping[str, Any], database: str) -> Any:
    return next(s for name, s in snapshots.items() if name.startswith(f"rds:{database}-"))


@pytest.fixture
async def instance(moto: MotoClient, clock: FakeClock) -> None:
    """The instance's automated snapshot of 30 hours ago and a manual one of 3 hours ago."""
    await make_instance(moto)
    await (await moto("rds")).create_db_snapshot(DBInstanceIdentifier=INSTANCE, DBSnapshotIdentifier="before-upgrade")
    snapshots = backend("rds").database_snapshots
    taken(automated_of(snapshots, INSTANCE), clock.now() - timedelta(hours=30))
    taken(snapshots["before-upgrade"], clock.now() - timedelta(hours=3))


def notes(ctx: ActionContext) -> list[tuple[str, str, Mapping[str, Any]]]:
    assert isinstance(ctx.timeline, RecordingTimeline)
    return ctx.timeline.notes


async def test_a_recent_snapshot_passes_and_the_list_goes_onto_the_timeline(
        instance: None, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    ctx = ctx_for(CHECK, RAW)
    execution = await CHECK.run(CHECK.Params(**RAW), ctx)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["newest"]["id"] == "before-upgrade" and execution.detail["snapshots"] == 2
    assert execution.detail["age_seconds"] == pytest.approx(3 * 3600, abs=5)
    [(kind, message, data)] = notes(ctx)
    assert kind == "backups"
    assert [(s["id"].split("-")[0], s["type"]) for s in data["recent"]] == [("before", "manual"),
                                                                            ("rds:erp", "automated")]
    assert "2 snapshots (1 automated, 1 manual)" in message and "3.0 h ago: within max_age 26.0 h" in message
    assert proxy.operations("rds") == ["DescribeDBSnapshots"]  # read-only: nothing else is called


async def test_no_recent_snapshot_of_the_types_asked_fails_the_check(instance: None, ctx_for: CtxFactory) -> None:
    raw = {**RAW, "types": ["automated"]}
    ctx = ctx_for(CHECK, raw)
    execution = await CHECK.run(CHECK.Params(**raw), ctx)

    assert execution.outcome is Outcome.FAILED and execution.reason is FailureReason.CHECK_FAILED
    assert execution.retryable is False and execution.detail["newest"]["type"] == "automated"
    assert "30.0 h ago: older than max_age 26.0 h" in execution.detail["error"]
    assert [kind for kind, _, _ in notes(ctx)] == ["backups"]  # recorded whatever the verdict


async def test_snapshots_still_being_taken_are_no_backup(moto: MotoClient, ctx_for: CtxFactory,
                                                         clock: FakeClock) -> None:
    await make_instance(moto)
    taken(automated_of(backend("rds").database_snapshots, INSTANCE), clock.now(), status="creating")
    execution = await CHECK.run(CHECK.Params(**RAW), ctx_for(CHECK, RAW))

    assert execution.reason is FailureReason.CHECK_FAILED and execution.detail["newest"] is None
    assert "1 snapshots (1 automated, 0 manual), none available: no backup to restore from" in execution.detail["error"]


async def test_the_snapshots_of_a_deleted_instance_are_still_found(instance: None, moto: MotoClient,
                                                                   ctx_for: CtxFactory) -> None:
    await (await moto("rds")).delete_db_instance(DBInstanceIdentifier=INSTANCE, SkipFinalSnapshot=True)
    execution = await CHECK.run(CHECK.Params(**RAW), ctx_for(CHECK, RAW))
    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["newest"]["id"] == "before-upgrade"


async def test_a_cluster_is_checked_through_its_cluster_snapshots(moto: MotoClient, ctx_for: CtxFactory,
                                                                  clock: FakeClock, proxy: FaultProxy) -> None:
    await make_cluster(moto)
    taken(automated_of(backend("rds").cluster_snapshots, CLUSTER), clock.now() - timedelta(hours=2))
    raw = {"cluster_id": CLUSTER, "max_age": "26h"}
    execution = await CHECK.run(CHECK.Params(**raw), ctx_for(CHECK, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["newest"]["id"].startswith(f"rds:{CLUSTER}-")
    assert proxy.operations("rds") == ["DescribeDBClusterSnapshots"]


async def test_access_denied_is_a_failure_of_the_action_not_of_the_backups(
        instance: None, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    proxy.add(Rule("DescribeDBSnapshots", times=None, status=403, code="AccessDenied"))
    ctx = ctx_for(CHECK, RAW)
    execution = await CHECK.run(CHECK.Params(**RAW), ctx)

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert "rds:DescribeDBSnapshots" in execution.detail["error"]
    assert notes(ctx) == []  # nothing was seen, so nothing is claimed about the backups


async def test_throttled_twice_then_listed(instance: None, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    proxy.add(Rule("DescribeDBSnapshots", times=2, code="Throttling"))
    execution = await CHECK.run(CHECK.Params(**RAW), ctx_for(CHECK, RAW))
    assert execution.outcome is Outcome.SUCCEEDED and execution.detail["retry_attempts"] == 2


async def test_the_dry_run_plan_is_the_listing(ctx_for: CtxFactory) -> None:
    [planned] = await CHECK.plan_calls(CHECK.Params(**RAW), ctx_for(CHECK, RAW, dry_run=True))
    assert planned.as_dict() == {"service": "rds", "operation": "DescribeDBSnapshots",
                                 "args": {"DBInstanceIdentifier": INSTANCE}}


@pytest.mark.parametrize(("raw", "why"), [
    ({"max_age": "26h"}, "exactly one of instance_id and cluster_id"),
    ({"instance_id": "a", "cluster_id": "b", "max_age": "26h"}, "exactly one"),
    ({"instance_id": "erp-db", "max_age": "0s"}, "must be longer than zero"),
    ({"instance_id": "erp-db", "max_age": "26h", "types": ["shared"]}, "types"),
])
def test_params_name_one_database_and_a_bound(raw: dict[str, Any], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        CHECK.Params(**raw)
