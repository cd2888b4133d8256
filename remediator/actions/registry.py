"""The explicit list of actions this build ships (no import side effects register anything)."""

from __future__ import annotations

from remediator.actions.aws import (
    ec2,
    ecs,
    elasticache,
    elasticache_restore,
    nat_routes,
    rds,
    rds_snapshots,
    route53,
    s3,
    waf,
)
from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook
from remediator.actions.postgres.connections import CancelLongQueries, TerminateIdleConnections
from remediator.actions.postgres.diagnostics import PostgresDiagnostics
from remediator.actions.postgres.report import PostgresReport
from remediator.actions.redis.diagnostics import RedisDiagnostics
from remediator.actions.redis.sessions import InvalidateSessions


def default_registry() -> ActionRegistry:
    """Every action type the daemon knows, one instance each (actions hold no state)."""
    return ActionRegistry([
        NotifyWebhook(),
        ecs.ForceNewDeployment(),
        ecs.ScaleService(),
        ecs.Rollback(),
        waf.BlockIp(),
        waf.UnblockIp(),
        rds.FailoverCluster(),
        rds.RebootInstance(),
        rds.GrowStorage(),
        rds_snapshots.CheckSnapshots(),
        elasticache.Failover(),
        elasticache.ScaleNodeType(),
        elasticache_restore.RestoreFromSnapshot(),
        s3.PreserveEvidence(),
        ec2.SnapshotVolumes(),
        ec2.IsolateInstance(),
        nat_routes.ReplaceRoute(),
        route53.UpsertRecord(),
        TerminateIdleConnections(),
        CancelLongQueries(),
        PostgresDiagnostics(),
        PostgresReport(),
        InvalidateSessions(),
        RedisDiagnostics(),
    ])
