"""The explicit list of actions this build ships (no import side effects register anything)."""

from __future__ import annotations

from remediator.actions import ec2, ecs, elasticache, rds, route53, s3, waf
from remediator.actions.base import ActionRegistry
from remediator.actions.notify import NotifyWebhook


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
        elasticache.Failover(),
        s3.PreserveEvidence(),
        ec2.SnapshotVolumes(),
        ec2.IsolateInstance(),
        route53.UpsertRecord(),
    ])
