"""`s3.preserve_evidence`: copy the objects of an incident's time window to the forensics bucket.

The destination comes from settings (`aws.evidence.bucket`), never from an alert. Objects land
under `<key_prefix><incident id>/<source bucket>/<source key>`, next to a `manifest.json`
listing what was copied (key, size, ETag, source) for the chain of custody. Where the forensics
bucket has Object Lock enabled, every copy and the manifest carry a retention (mode + days).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import AwareDatetime, Field, model_validator

from remediator.actions.aws.common import BucketName, KeyPrefix, Refused
from remediator.actions.base import Action, ActionContext, ActionParams, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk
from remediator.settings import Duration, EvidenceSettings


class EvidenceParams(ActionParams):
    source_bucket: BucketName
    prefix: KeyPrefix = Field(min_length=1, description="only keys under this prefix")
    start: AwareDatetime | None = Field(None, description="only objects last modified at or after")
    end: AwareDatetime | None = Field(None, description="only objects last modified at or before (default: now)")
    lookback: Duration | None = Field(None, description="start = now - lookback (instead of start)")
    retention_mode: Literal["GOVERNANCE", "COMPLIANCE"] = "GOVERNANCE"
    retention_days: int = Field(90, ge=1, le=3650)

    @model_validator(mode="after")
    def _one_window(self) -> EvidenceParams:
        if self.start is not None and self.lookback is not None:
            raise ValueError("give start or lookback, not both")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise ValueError("start must not be after end")
        if self.lookback is not None and self.lookback <= timedelta(0):
            raise ValueError("lookback must be positive")
        return self


class PreserveEvidence(Action[EvidenceParams]):
    """Copy objects under a prefix and time window to the forensics bucket, with Object Lock.

    Caps (`aws.evidence.max_objects`, `max_bytes`) are checked on the full listing before the
    first copy: when the window holds more, the run is refused (LIMIT_EXCEEDED) and nothing is
    copied; never a silent partial set. A copy failing midway returns a failed Execution that
    lists what was copied; a retry skips keys already copied with the same size.

    ```yaml
    type: s3.preserve_evidence
    params:
      source_bucket: erp-alb-logs
      prefix: "AWSLogs/123456789012/elasticloadbalancing/"
      lookback: 2h
      retention_mode: GOVERNANCE
      retention_days: 365
    ```
    """

    type_name = "s3.preserve_evidence"
    Params = EvidenceParams
    permissions = ("s3:ListBucket", "s3:GetObject", "s3:GetObjectTagging", "s3:PutObject",
                   "s3:PutObjectTagging", "s3:PutObjectRetention", "s3:GetBucketObjectLockConfiguration")
    risk = Risk.NORMAL

    def target(self, params: EvidenceParams) -> str:
        return f"s3:bucket/{params.source_bucket}/{params.prefix}"

    def _settings(self, ctx: ActionContext) -> EvidenceSettings:
        evidence = ctx.deps.settings.aws.evidence
        if not evidence.bucket:
            raise Refused(FailureReason.PRECHECK_FAILED, "no forensics bucket configured (aws.evidence.bucket)")
        return evidence

    def _window(self, params: EvidenceParams, now: datetime) -> tuple[datetime | None, datetime]:
        start = params.start or (now - params.lookback if params.lookback else None)
        return start, params.end or now

    async def _objects(self, calls: AwsCalls, params: EvidenceParams, window: tuple[datetime | None, datetime],
                       caps: EvidenceSettings) -> list[dict[str, Any]]:
        """Every object in the window; Refused as soon as the listing passes a cap."""
        start, end = window
        found: list[dict[str, Any]] = []
        args: dict[str, Any] = {"Bucket": params.source_bucket, "Prefix": params.prefix}
        while True:
            answer = await calls.call("s3", "ListObjectsV2", args)
            for item in answer.get("Contents", []):
                if (start is None or item["LastModified"] >= start) and item["LastModified"] <= end:
                    found.append({"Key": item["Key"], "Size": int(item["Size"]), "ETag": item.get("ETag", "")})
            size = sum(o["Size"] for o in found)
            if len(found) > caps.max_objects or size > caps.max_bytes:
                raise Refused(FailureReason.LIMIT_EXCEEDED,
                              f"the window holds more than the caps allow ({len(found)}+ objects, {size}+ bytes; "
                              f"caps {caps.max_objects} objects, {caps.max_bytes} bytes): nothing copied")
            if not answer.get("IsTruncated"):
                return found
            args["ContinuationToken"] = answer["NextContinuationToken"]

    async def _retention(self, calls: AwsCalls, bucket: str, params: EvidenceParams,
                         ctx: ActionContext) -> dict[str, Any]:
        """Object Lock arguments for writes into `bucket`, or {} when it has no Object Lock."""
        try:
            answer = await calls.call("s3", "GetObjectLockConfiguration", {"Bucket": bucket})
        except AwsCallError as err:
            if err.failure.code == "ObjectLockConfigurationNotFoundError":
                return {}
            raise
        if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
            return {}
        until = ctx.clock.now() + timedelta(days=params.retention_days)
        return {"ObjectLockMode": params.retention_mode, "ObjectLockRetainUntilDate": until.isoformat()}

    async def _existing(self, calls: AwsCalls, bucket: str, prefix: str) -> dict[str, int]:
        """Keys already preserved for this incident (a retried run skips them), with sizes."""
        sizes: dict[str, int] = {}
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        while True:
            answer = await calls.call("s3", "ListObjectsV2", args)
            sizes.update({item["Key"]: int(item["Size"]) for item in answer.get("Contents", [])})
            if not answer.get("IsTruncated"):
                return sizes
            args["ContinuationToken"] = answer["NextContinuationToken"]

    async def _plan(self, params: EvidenceParams, ctx: ActionContext, calls: AwsCalls) -> list[PlannedCall]:
        caps = self._settings(ctx)
        window = self._window(params, ctx.clock.now())
        objects = await self._objects(calls, params, window, caps)
        lock = await self._retention(calls, caps.bucket, params, ctx)
        base = f"{caps.key_prefix}{ctx.request.incident_id}/{params.source_bucket}/"
        existing = await self._existing(calls, caps.bucket, base)
        planned = [PlannedCall("s3", "CopyObject", {
            "Bucket": caps.bucket, "Key": base + item["Key"],
            "CopySource": {"Bucket": params.source_bucket, "Key": item["Key"]}, **lock})
            for item in objects if existing.get(base + item["Key"]) != item["Size"]]
        manifest = {"incident_id": ctx.request.incident_id, "request_id": ctx.request.id,
                    "source_bucket": params.source_bucket, "prefix": params.prefix,
                    "window": [t.isoformat() if t else None for t in window], "objects": objects}
        body = json.dumps(manifest, sort_keys=True, indent=1)
        planned.append(PlannedCall("s3", "PutObject", {
            "Bucket": caps.bucket, "Key": base + "manifest.json", "Body": body,
            "ContentType": "application/json", **lock}))
        return planned

    def refusal(self, params: EvidenceParams, ctx: ActionContext) -> str | None:
        try:
            self._settings(ctx)
        except Refused as refused:
            return refused.message
        return None

    async def precheck(self, params: EvidenceParams, ctx: ActionContext) -> str | None:
        try:
            await self._plan(params, ctx, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: EvidenceParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return await self._plan(params, ctx, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused):
            return []

    async def run(self, params: EvidenceParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        copied: list[str] = []
        try:
            planned = await self._plan(params, ctx, calls)
            for call in planned:
                await calls.run(call)
                copied.append(call.args["Key"])
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err, partial=bool(copied), copied=copied,
                                note=f"{len(copied)} written before the failure; a retry skips them")
        manifest = planned[-1].args
        objects = len(json.loads(manifest["Body"])["objects"])
        return calls.succeeded(
            bucket=manifest["Bucket"], manifest=manifest["Key"], objects=objects, copied=len(planned) - 1,
            skipped_already_copied=objects - (len(planned) - 1),
            retention=({"mode": manifest["ObjectLockMode"], "until": manifest["ObjectLockRetainUntilDate"]}
                       if "ObjectLockMode" in manifest else "none: the forensics bucket has no Object Lock"))
