"""s3.preserve_evidence against moto: copies, Object Lock retention, caps, retries."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from remediator.actions.aws.s3 import PreserveEvidence
from remediator.actions.base import ActionDeps
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.moto import backend

SOURCE, FORENSICS = "erp-alb-logs", "erp-forensics"
EVIDENCE = PreserveEvidence()
RAW: dict[str, Any] = {"source_bucket": SOURCE, "prefix": "alb/", "lookback": "2h", "retention_days": 30}
DEST = f"incidents/inc-0001/{SOURCE}/"


async def seed(moto: MotoClient, clock: FakeClock, keys: dict[str, bytes], *, lock: bool = True) -> None:
    """Source objects, a forensics bucket, and the daemon's clock moved past the puts."""
    s3 = await moto("s3")
    await s3.create_bucket(Bucket=SOURCE)
    await s3.create_bucket(Bucket=FORENSICS, ObjectLockEnabledForBucket=lock)
    for key, body in keys.items():
        await s3.put_object(Bucket=SOURCE, Key=key, Body=body)
    clock.advance(timedelta(seconds=2))  # the window ends "now": the objects must be in the past


def age(key: str, by: timedelta) -> None:
    """Make an object older than it is (moto stamps puts with the wall clock)."""
    stored = backend("s3", "global").buckets[SOURCE].keys[key]
    stored.last_modified -= by


async def preserved(moto: MotoClient) -> list[str]:
    answer = await (await moto("s3")).list_objects_v2(Bucket=FORENSICS)
    return sorted(item["Key"] for item in answer.get("Contents", []))


async def test_copies_the_window_with_retention_and_a_manifest(moto: MotoClient, ctx_for: CtxFactory,
                                                               clock: FakeClock) -> None:
    await seed(moto, clock, {"alb/1.log": b"GET /wards 200", "alb/2.log": b"GET /admit 500", "alb/old.log": b"x",
                      "other/3.log": b"not under the prefix"})
    age("alb/old.log", timedelta(hours=3))
    params = EVIDENCE.Params(**RAW)

    assert await EVIDENCE.precheck(params, ctx_for(EVIDENCE, RAW)) is None
    execution = await EVIDENCE.run(params, ctx_for(EVIDENCE, RAW))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert await preserved(moto) == [DEST + "alb/1.log", DEST + "alb/2.log", DEST + "manifest.json"]
    s3 = await moto("s3")
    source = await s3.head_object(Bucket=SOURCE, Key="alb/2.log")
    copy = await s3.head_object(Bucket=FORENSICS, Key=DEST + "alb/2.log")
    assert copy["ETag"] == source["ETag"]
    assert copy["ObjectLockMode"] == "GOVERNANCE"
    assert copy["ObjectLockRetainUntilDate"] >= clock.now() + timedelta(days=30) - timedelta(seconds=1)
    body = await (await s3.get_object(Bucket=FORENSICS, Key=DEST + "manifest.json"))["Body"].read()
    manifest = json.loads(body)
    assert [o["Key"] for o in manifest["objects"]] == ["alb/1.log", "alb/2.log"]
    assert manifest["incident_id"] == "inc-0001"
    assert execution.detail["copied"] == 2 and execution.detail["retention"]["mode"] == "GOVERNANCE"


async def test_a_locked_copy_cannot_be_deleted(moto: MotoClient, ctx_for: CtxFactory, clock: FakeClock) -> None:
    await seed(moto, clock, {"alb/1.log": b"evidence"})
    execution = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))
    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    s3 = await moto("s3")
    version = (await s3.head_object(Bucket=FORENSICS, Key=DEST + "alb/1.log"))["VersionId"]
    with pytest.raises(s3.exceptions.ClientError, match="AccessDenied"):
        await s3.delete_object(Bucket=FORENSICS, Key=DEST + "alb/1.log", VersionId=version)


async def test_without_object_lock_copies_and_says_so(moto: MotoClient, ctx_for: CtxFactory,
                                                      clock: FakeClock) -> None:
    await seed(moto, clock, {"alb/1.log": b"evidence"}, lock=False)
    execution = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert "no Object Lock" in execution.detail["retention"]
    copy = await (await moto("s3")).head_object(Bucket=FORENSICS, Key=DEST + "alb/1.log")
    assert "ObjectLockMode" not in copy


@pytest.mark.parametrize(("count", "size", "cap"), [(6, 10, "6+ objects"), (2, 6000, "12000+ bytes")])
async def test_over_a_cap_nothing_is_copied(moto: MotoClient, ctx_for: CtxFactory, clock: FakeClock,
                                            proxy: FaultProxy, count: int, size: int, cap: str) -> None:
    await seed(moto, clock, {f"alb/{i}.log": b"x" * size for i in range(count)})
    execution = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))

    assert execution.outcome is Outcome.FAILED and execution.reason is FailureReason.LIMIT_EXCEEDED
    assert cap in execution.detail["error"] and "nothing copied" in execution.detail["error"]
    assert await preserved(moto) == []
    assert not [op for op in proxy.operations("s3") if op.startswith(("PUT", "POST", "DELETE"))]


async def test_a_failed_copy_is_reported_and_a_retry_completes_the_set(
        moto: MotoClient, ctx_for: CtxFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    await seed(moto, clock, {"alb/1.log": b"one", "alb/2.log": b"two", "alb/3.log": b"three"})
    proxy.add(Rule(f"PUT /{FORENSICS}/*2.log", times=None, status=403, code="AccessDenied"))

    failed = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))
    assert failed.outcome is Outcome.FAILED and failed.reason is FailureReason.ACCESS_DENIED
    assert failed.detail["partial"] is True and failed.detail["copied"] == [DEST + "alb/1.log"]

    proxy.rules.clear()
    done = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))
    assert done.outcome is Outcome.SUCCEEDED
    assert done.detail["copied"] == 2 and done.detail["skipped_already_copied"] == 1
    assert await preserved(moto) == [DEST + k for k in ("alb/1.log", "alb/2.log", "alb/3.log", "manifest.json")]


async def test_refused_without_a_forensics_bucket(moto: MotoClient, ctx_for: CtxFactory, deps: ActionDeps,
                                                  proxy: FaultProxy) -> None:
    aws = deps.settings.aws
    deps.settings = deps.settings.model_copy(update={
        "aws": aws.model_copy(update={"evidence": aws.evidence.model_copy(update={"bucket": ""})})})
    execution = await EVIDENCE.run(EVIDENCE.Params(**RAW), ctx_for(EVIDENCE, RAW))
    assert execution.reason is FailureReason.PRECHECK_FAILED and "aws.evidence.bucket" in execution.detail["error"]
    assert proxy.log == []


def test_params_windows() -> None:
    with pytest.raises(ValidationError, match="not both"):
        EVIDENCE.Params(**{**RAW, "start": "2026-01-05T08:00:00Z"})
    with pytest.raises(ValidationError, match="after end"):
        EVIDENCE.Params(source_bucket=SOURCE, prefix="alb/", start="2026-01-05T09:00:00Z", end="2026-01-05T08:00:00Z")
    with pytest.raises(ValidationError):
        EVIDENCE.Params(source_bucket=SOURCE, prefix="alb/", start="2026-01-05T08:00:00")  # naive time
    with pytest.raises(ValidationError):
        EVIDENCE.Params(source_bucket="Not_A_Bucket", prefix="alb/")
