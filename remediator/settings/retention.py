"""Settings of retention: how long each kind of record is kept, and the archive written before deletion."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from remediator.settings.base import Duration, PositiveDuration, Section

# Below this, a sender's late redelivery could outlive the dedup keys and be taken for a new alert.
MIN_ALERTS = timedelta(days=7)


class ArchiveSettings(Section):
    """Where what is about to be deleted is exported first: S3, JSON Lines, gzip, one object per day
    and kind, encrypted with SSE-KMS under `kms_key_id` (the archive holds patient-related data)."""

    bucket: str = ""  # empty: nothing is exported
    key_prefix: str = "remediator/archive/"
    kms_key_id: str = ""  # key id, ARN or alias; required with a bucket
    region: str | None = None  # the bucket's region when it is not aws.region
    kinds: list[str] = ["alerts", "incidents", "audit", "timers"]

    @model_validator(mode="after")
    def _encrypted(self) -> ArchiveSettings:
        if self.bucket and not self.kms_key_id:
            raise ValueError("kms_key_id is required with a bucket: the archive is written with SSE-KMS only")
        unknown = sorted(set(self.kinds) - {"alerts", "incidents", "audit", "timers"})
        if unknown:
            raise ValueError(f"kinds: unknown {unknown} (alerts, incidents, audit, timers)")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.bucket)


class RetentionSettings(Section):
    """How long records are kept. Open incidents, pending approvals, unfinished requests and
    whatever they refer to are never deleted, whatever their age."""

    enabled: bool = True
    # Raw alerts and their dedup keys (a redelivery older than this is no longer recognised).
    alerts: PositiveDuration = timedelta(days=30)
    # A resolved incident's detail: the incident, its timeline, its approvals and their votes.
    incidents: PositiveDuration = timedelta(days=400)
    # Audit records (finished requests): kept longest, or archived before they go.
    audit: PositiveDuration = timedelta(days=7 * 365)
    # Fired and cancelled timers.
    timers: PositiveDuration = timedelta(days=30)
    interval: PositiveDuration = timedelta(minutes=10)
    batch_size: int = Field(500, ge=1, le=10_000, description="rows deleted per transaction")
    pause: Duration = timedelta(milliseconds=20)  # between batches: ingest goes first
    # The size the store should stay under (bytes; 0: no budget): the StoreNearBudget alert's line.
    size_budget_bytes: int = Field(0, ge=0)
    archive: ArchiveSettings = ArchiveSettings()

    @model_validator(mode="after")
    def _safe(self) -> RetentionSettings:
        if self.alerts < MIN_ALERTS:
            raise ValueError("alerts: at least 7d (dedup keys live as long as the alerts they belong to)")
        archived_audit = self.archive.enabled and "audit" in self.archive.kinds
        if self.audit < self.incidents and not archived_audit:
            raise ValueError("audit: keep audit records at least as long as incidents, or archive them "
                             "(retention.archive with kinds including audit)")
        return self

    def keep(self, kind: str) -> timedelta:
        """How long `kind` is kept."""
        found: timedelta = getattr(self, kind)
        return found
