"""CloudWatch alarm state as a probe for other actions' `verify` (not an action of its own).

A probe changes nothing and is not something a policy "does" at an incident, so it is a function
and not a registered action: actions whose params take `verify_alarm` (ECS, RDS, ElastiCache)
call it from `verify`, and declare `cloudwatch:DescribeAlarms` among their permissions.
"""

from __future__ import annotations

from remediator.aws.clients import AwsCalls

ALARM_PERMISSION = "cloudwatch:DescribeAlarms"


async def alarm_state(calls: AwsCalls, name: str) -> str | None:
    """The alarm's StateValue (OK, ALARM, INSUFFICIENT_DATA), or None when no alarm has that name."""
    answer = await calls.call("cloudwatch", "DescribeAlarms", {
        "AlarmNames": [name], "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]})
    alarms = [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]
    return str(alarms[0]["StateValue"]) if alarms else None


async def alarm_is_ok(calls: AwsCalls, name: str) -> bool:
    """Is the alarm back to OK? A missing alarm is never OK (a misnamed probe must not pass)."""
    return await alarm_state(calls, name) == "OK"
