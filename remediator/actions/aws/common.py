"""What the AWS actions share: identifier types, refusals, and reading what a run recorded."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from remediator.actions.aws.cloudwatch import alarm_is_ok
from remediator.actions.base import ActionContext, ActionParams
from remediator.aws.clients import AwsCallError, AwsCalls
from remediator.model import FailureReason

# Identifiers as AWS documents them; values from alert labels must match before anything runs.
EcsName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")]
TaskDefinitionRef = Annotated[str, StringConstraints(
    pattern=r"^([A-Za-z0-9_-]{1,255}:[1-9][0-9]{0,9}"
            r"|arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task-definition/[A-Za-z0-9_-]{1,255}:[1-9][0-9]{0,9})$")]
# A letter first, no trailing hyphen, never two hyphens in a row.
DbIdentifier = Annotated[str, StringConstraints(max_length=63, pattern=r"^[A-Za-z](-?[A-Za-z0-9])*$")]
CacheIdentifier = Annotated[str, StringConstraints(max_length=40, pattern=r"^[A-Za-z](-?[A-Za-z0-9])*$")]
NodeGroupId = Annotated[str, StringConstraints(pattern=r"^[0-9]{4}$")]
InstanceId = Annotated[str, StringConstraints(pattern=r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")]
SecurityGroupId = Annotated[str, StringConstraints(pattern=r"^sg-([0-9a-f]{8}|[0-9a-f]{17})$")]
HostedZoneId = Annotated[str, StringConstraints(pattern=r"^(/hostedzone/)?[A-Z0-9]{1,32}$")]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
KeyPrefix = Annotated[str, StringConstraints(max_length=512, pattern=r"^[A-Za-z0-9!_.*'()/=+,@-]*$")]
AlarmName = Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f]+$")]


class Refused(Exception):
    """The action decided not to act (a bound, a cap, a precondition seen at run time)."""

    def __init__(self, reason: FailureReason, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retryable = retryable


class AlarmVerified(ActionParams):
    """Params of actions whose `verify` may also wait for a CloudWatch alarm to be OK."""

    verify_alarm: AlarmName | None = Field(
        None, description="recovered only once this CloudWatch alarm is back to OK")


def recorded(ctx: ActionContext, key: str) -> Any:
    """A value the run put in its Execution detail (None when the engine passed no execution)."""
    return ctx.execution.detail.get(key) if ctx.execution is not None else None


async def not_yet_on_error(check: Awaitable[bool]) -> bool:
    """Run a verify check; an AWS error while polling means "not known yet", never "recovered"."""
    try:
        return await check
    except (AwsCallError, Refused):
        return False


async def alarm_ok(calls: AwsCalls, params: AlarmVerified) -> bool:
    """True when the params name no alarm, or the named alarm is OK."""
    return params.verify_alarm is None or await alarm_is_ok(calls, params.verify_alarm)


def hours(span: timedelta) -> str:
    """A span as people read an age of backups: `26.0 h`."""
    return f"{span.total_seconds() / 3600:.1f} h"
