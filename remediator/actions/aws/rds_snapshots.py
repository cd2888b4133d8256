"""`rds.check_snapshots`: is there a recent backup of the database? Read-only, onto the timeline.

The ransomware scenario asks it before anything is restored: which snapshots exist (automated and
manual), how old the newest usable one is. Snapshots are listed by the instance or cluster id,
which also finds those of a database that has been deleted since (manual snapshots outlive it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field, model_validator

from remediator.actions.aws.common import DbIdentifier, hours
from remediator.actions.base import ActionContext, ActionParams, PlannedCall, ReadOnlyAction
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason
from remediator.settings import PositiveDuration

SnapshotType = Literal["automated", "manual", "awsbackup"]
MAX_PAGES = 20


class CheckSnapshotsParams(ActionParams):
    instance_id: DbIdentifier | None = Field(None, description="a DB instance (or give cluster_id)")
    cluster_id: DbIdentifier | None = Field(None, description="an Aurora or Multi-AZ DB cluster")
    max_age: PositiveDuration = Field(description="fail when the newest available snapshot is older than this")
    types: list[SnapshotType] = Field(["automated", "manual"], min_length=1, description="snapshot types counted")
    show: int = Field(5, ge=1, le=50, description="how many of the newest snapshots go onto the timeline")

    @model_validator(mode="after")
    def _one_database(self) -> CheckSnapshotsParams:
        if (self.instance_id is None) == (self.cluster_id is None):
            raise ValueError("give exactly one of instance_id and cluster_id")
        return self

    @property
    def database(self) -> str:
        return f"cluster {self.cluster_id}" if self.cluster_id else f"instance {self.instance_id}"

    def listing(self) -> PlannedCall:
        if self.cluster_id is not None:
            return PlannedCall("rds", "DescribeDBClusterSnapshots", {"DBClusterIdentifier": self.cluster_id})
        return PlannedCall("rds", "DescribeDBSnapshots", {"DBInstanceIdentifier": self.instance_id})


def snapshot_view(snapshot: dict[str, Any]) -> dict[str, Any]:
    created = snapshot.get("SnapshotCreateTime")
    return {"id": snapshot.get("DBClusterSnapshotIdentifier") or snapshot.get("DBSnapshotIdentifier"),
            "type": snapshot.get("SnapshotType"), "status": snapshot.get("Status"),
            "created": created.isoformat() if isinstance(created, datetime) else None,
            "encrypted": snapshot.get("StorageEncrypted", snapshot.get("Encrypted")),
            "allocated_gib": snapshot.get("AllocatedStorage"), "engine_version": snapshot.get("EngineVersion")}


async def list_snapshots(calls: AwsCalls, params: CheckSnapshotsParams) -> list[dict[str, Any]]:
    """Every snapshot of the database of the types asked for, newest first."""
    planned = params.listing()
    key = "DBClusterSnapshots" if params.cluster_id else "DBSnapshots"
    args: dict[str, Any] = {**planned.args, "MaxRecords": 100}
    found: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        answer = await calls.call(planned.service, planned.operation, args)
        found += answer.get(key, [])
        if not answer.get("Marker"):
            break
        args["Marker"] = answer["Marker"]
    wanted = [s for s in found if s.get("SnapshotType") in params.types]
    return sorted(wanted, key=_created, reverse=True)


def _created(snapshot: dict[str, Any]) -> float:
    """When the snapshot was taken, as a sort key (one still being taken may have no time yet)."""
    created = snapshot.get("SnapshotCreateTime")
    return created.timestamp() if isinstance(created, datetime) else float("-inf")


class CheckSnapshots(ReadOnlyAction[CheckSnapshotsParams]):
    """List an RDS instance's or cluster's recent snapshots onto the timeline; fail when none is recent.

    Lists automated and manual snapshots (DescribeDBSnapshots, or DescribeDBClusterSnapshots for
    `cluster_id`) and records the newest `show` of them on the incident timeline. Fails with
    check_failed when no `available` snapshot exists, or the newest is older than `max_age`, so the
    policy's next step can tell people there is no clean recent backup. Changes nothing.

    ```yaml
    type: rds.check_snapshots
    params:
      instance_id: "{labels.DBInstanceIdentifier}"
      max_age: 26h
    ```
    """

    type_name = "rds.check_snapshots"
    Params = CheckSnapshotsParams
    permissions = ("rds:DescribeDBSnapshots", "rds:DescribeDBClusterSnapshots")

    def target(self, params: CheckSnapshotsParams) -> str:
        return f"rds:cluster/{params.cluster_id}" if params.cluster_id else f"rds:db/{params.instance_id}"

    async def plan_calls(self, params: CheckSnapshotsParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [params.listing()]

    async def run(self, params: CheckSnapshotsParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx, read_only=True)
        try:
            backups = Backups(params, await list_snapshots(calls, params), ctx.clock.now())
        except AwsCallError as err:
            return calls.failed(err)
        message = f"rds {params.database}: {backups.summary()}"
        await ctx.timeline.note("backups", message, {**backups.detail(), "recent": backups.recent()})
        if not backups.recent_enough:
            return calls.refused(FailureReason.CHECK_FAILED, message, **backups.detail())
        return calls.succeeded(**backups.detail())


@dataclass(frozen=True, slots=True)
class Backups:
    """What the listing says: the newest usable snapshot and whether it is recent enough."""

    params: CheckSnapshotsParams
    snapshots: list[dict[str, Any]]  # newest first
    now: datetime

    @property
    def newest(self) -> dict[str, Any] | None:
        return next((s for s in self.snapshots if s.get("Status") == "available" and _created(s) > float("-inf")),
                    None)

    @property
    def age(self) -> timedelta | None:
        newest = self.newest
        return None if newest is None else self.now - newest["SnapshotCreateTime"]

    @property
    def recent_enough(self) -> bool:
        age = self.age
        return age is not None and age <= self.params.max_age

    def recent(self) -> list[dict[str, Any]]:
        return [snapshot_view(s) for s in self.snapshots[: self.params.show]]

    def detail(self) -> dict[str, Any]:
        newest, age = self.newest, self.age
        return {"database": self.params.database, "snapshots": len(self.snapshots),
                "newest": snapshot_view(newest) if newest else None,
                "age_seconds": None if age is None else age.total_seconds(),
                "max_age_seconds": self.params.max_age.total_seconds()}

    def summary(self) -> str:
        counts = ", ".join(f"{sum(s.get('SnapshotType') == t for s in self.snapshots)} {t}"
                           for t in self.params.types)
        newest, age = self.newest, self.age
        if newest is None or age is None:
            return f"{len(self.snapshots)} snapshots ({counts}), none available: no backup to restore from"
        verdict = "within" if self.recent_enough else "older than"
        return (f"{len(self.snapshots)} snapshots ({counts}); the newest available, {snapshot_view(newest)['id']}, "
                f"was taken {hours(age)} ago: {verdict} max_age {hours(self.params.max_age)}")

