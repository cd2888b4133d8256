"""ECS service actions: force a new deployment, scale within bounds, roll back a task definition.

All three share the target `ecs:service/<cluster>/<service>`, so one lease and one cooldown
(declared by the policy, enforced by the guardrails) cover every action on a service.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import Field, model_validator

from remediator.actions.aws.cloudwatch import ALARM_PERMISSION
from remediator.actions.aws.common import (
    AlarmVerified,
    EcsName,
    Refused,
    TaskDefinitionRef,
    alarm_ok,
    not_yet_on_error,
    recorded,
)
from remediator.actions.base import Action, ActionContext, PlannedCall
from remediator.aws.clients import AwsCallError, AwsCalls, aws_calls
from remediator.model import Execution, FailureReason, Risk


class EcsServiceParams(AlarmVerified):
    cluster: EcsName
    service: EcsName


async def describe_service(calls: AwsCalls, params: EcsServiceParams) -> dict[str, Any]:
    """The service, or Refused(NOT_FOUND) when ECS reports it missing."""
    answer = await calls.call("ecs", "DescribeServices", {"cluster": params.cluster, "services": [params.service]})
    services = answer.get("services") or []
    if not services:
        raise Refused(FailureReason.NOT_FOUND, f"ECS service {params.cluster}/{params.service} not found")
    return dict(services[0])


async def active_service(calls: AwsCalls, params: EcsServiceParams) -> dict[str, Any]:
    service = await describe_service(calls, params)
    if service.get("status") != "ACTIVE":
        raise Refused(FailureReason.PRECHECK_FAILED,
                      f"ECS service {params.cluster}/{params.service} is {service.get('status')}, not ACTIVE")
    return service


def primary_deployment(service: dict[str, Any]) -> dict[str, Any]:
    return next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), {})


E = TypeVar("E", bound=EcsServiceParams)


class EcsServiceAction(Action[E], Generic[E]):
    """Shared target and precheck of actions on one ECS service."""

    def target(self, params: E) -> str:
        return f"ecs:service/{params.cluster}/{params.service}"

    async def precheck(self, params: E, ctx: ActionContext) -> str | None:
        try:
            await active_service(aws_calls(ctx, read_only=True), params)
        except (AwsCallError, Refused) as err:
            return str(err)
        return None


class ForceNewDeployment(EcsServiceAction[EcsServiceParams]):
    """Replace every task of an ECS service with fresh ones (same task definition).

    Recovered once the deployment this run started (its id is in the Execution detail) has
    rolloutState COMPLETED, and `verify_alarm`, if given, is OK. A later deployment replacing
    ours is not counted as our recovery.

    ```yaml
    type: ecs.force_new_deployment
    params:
      cluster: "{labels.ClusterName}"
      service: "{labels.ServiceName}"
      verify_alarm: erp-api-5xx
    ```
    """

    type_name = "ecs.force_new_deployment"
    Params = EcsServiceParams
    permissions = ("ecs:DescribeServices", "ecs:UpdateService", ALARM_PERMISSION)
    risk = Risk.NORMAL

    def _call(self, params: EcsServiceParams) -> PlannedCall:
        return PlannedCall("ecs", "UpdateService",
                           {"cluster": params.cluster, "service": params.service, "forceNewDeployment": True})

    async def plan_calls(self, params: EcsServiceParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        return [self._call(params)]

    async def run(self, params: EcsServiceParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            before = primary_deployment(await active_service(calls, params)).get("id")
            answer = await calls.run(self._call(params))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        deployment = primary_deployment(answer.get("service", {}))
        return calls.succeeded(previous_deployment_id=before, deployment_id=deployment.get("id"),
                               service_arn=answer.get("service", {}).get("serviceArn"))

    async def verify(self, params: EcsServiceParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._completed(params, ctx))

    async def _completed(self, params: EcsServiceParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        service = await describe_service(calls, params)
        ours = recorded(ctx, "deployment_id")
        deployment: dict[str, Any]
        if ours is not None:
            deployment = next((d for d in service.get("deployments", []) if d.get("id") == ours), {})
        else:
            # No execution passed: the PRIMARY deployment counts if it began after the request.
            deployment = primary_deployment(service)
            created = deployment.get("createdAt")
            if not isinstance(created, datetime) or created < ctx.request.created_at:
                return False
        return deployment.get("rolloutState") == "COMPLETED" and await alarm_ok(calls, params)


class ScaleParams(EcsServiceParams):
    step: int = Field(ge=-100, le=100, description="tasks to add (negative: remove)")
    min: int = Field(ge=0, le=1000, description="never fewer tasks than this")
    max: int = Field(ge=1, le=1000, description="never more tasks than this")

    @model_validator(mode="after")
    def _coherent(self) -> ScaleParams:
        if self.step == 0:
            raise ValueError("step must not be 0")
        if self.min > self.max:
            raise ValueError("min must not exceed max")
        return self


class ScaleService(EcsServiceAction[ScaleParams]):
    """Change an ECS service's desiredCount by `step`, clamped to [`min`, `max`].

    A step that would cross a bound is clamped to it; when the service is already at the bound
    (or the clamp would move it the other way) the run fails LIMIT_EXCEEDED, not retryable, and
    makes no UpdateService call. Recovered when runningCount equals the desiredCount it set.

    ```yaml
    type: ecs.scale_service
    params:
      cluster: "{labels.ClusterName}"
      service: "{labels.ServiceName}"
      step: 2
      min: 2
      max: 12
    ```
    """

    type_name = "ecs.scale_service"
    Params = ScaleParams
    permissions = ("ecs:DescribeServices", "ecs:UpdateService", ALARM_PERMISSION)
    risk = Risk.NORMAL

    async def _planned(self, params: ScaleParams, calls: AwsCalls) -> tuple[int, PlannedCall]:
        current = int((await active_service(calls, params)).get("desiredCount", 0))
        desired = max(params.min, min(params.max, current + params.step))
        moved = desired - current
        if moved == 0 or (moved > 0) != (params.step > 0):
            bound = f"max {params.max}" if params.step > 0 else f"min {params.min}"
            raise Refused(FailureReason.LIMIT_EXCEEDED,
                          f"desiredCount is {current}: a step of {params.step} would pass {bound}; not scaled")
        return current, PlannedCall("ecs", "UpdateService",
                                    {"cluster": params.cluster, "service": params.service, "desiredCount": desired})

    async def plan_calls(self, params: ScaleParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            return [(await self._planned(params, aws_calls(ctx, read_only=True)))[1]]
        except (Refused, AwsCallError):
            return []  # nothing would be called: run reports why

    async def run(self, params: ScaleParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            current, call = await self._planned(params, calls)
            await calls.run(call)
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        desired = call.args["desiredCount"]
        clamped = desired != current + params.step
        return calls.succeeded(previous_desired_count=current, desired_count=desired, clamped=clamped)

    async def verify(self, params: ScaleParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._settled(params, ctx))

    async def _settled(self, params: ScaleParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        service = await describe_service(calls, params)
        wanted = recorded(ctx, "desired_count")
        desired = service.get("desiredCount")
        if wanted is not None and desired != wanted:
            return False
        return service.get("runningCount") == desired and await alarm_ok(calls, params)


class RollbackParams(EcsServiceParams):
    task_definition: TaskDefinitionRef | None = Field(
        None, description="family:revision or ARN; default: the previous ACTIVE revision")


class Rollback(EcsServiceAction[RollbackParams]):
    """Point an ECS service back at an earlier task definition revision (full ARN passed).

    Without `task_definition` the previous ACTIVE revision of the running family is used.
    Refused when the revision does not exist or is the one already running. Recovered when the
    service runs that revision and its PRIMARY deployment has rolloutState COMPLETED.

    ```yaml
    type: ecs.rollback
    params:
      cluster: erp-prod
      service: "{labels.ServiceName}"
      task_definition: erp-api:41
    ```
    """

    type_name = "ecs.rollback"
    Params = RollbackParams
    permissions = ("ecs:DescribeServices", "ecs:DescribeTaskDefinition", "ecs:ListTaskDefinitions",
                   "ecs:UpdateService", ALARM_PERMISSION)
    risk = Risk.HIGH

    async def _definition(self, calls: AwsCalls, ref: str) -> dict[str, Any]:
        answer = await calls.call("ecs", "DescribeTaskDefinition", {"taskDefinition": ref})
        return dict(answer["taskDefinition"])

    async def _previous(self, calls: AwsCalls, family: str, revision: int) -> str:
        arns: list[str] = []
        args: dict[str, Any] = {"familyPrefix": family, "status": "ACTIVE"}
        while True:
            answer = await calls.call("ecs", "ListTaskDefinitions", args)
            arns += answer.get("taskDefinitionArns", [])
            if not answer.get("nextToken"):
                break
            args["nextToken"] = answer["nextToken"]
        # familyPrefix is a prefix: keep this family only, then the highest earlier revision.
        earlier = [(int(a.rsplit(":", 1)[1]), a) for a in arns
                   if a.rsplit("/", 1)[1].rsplit(":", 1)[0] == family and int(a.rsplit(":", 1)[1]) < revision]
        if not earlier:
            raise Refused(FailureReason.PRECHECK_FAILED, f"no ACTIVE revision of {family} before {revision}")
        return max(earlier)[1]

    async def _resolve(self, params: RollbackParams, calls: AwsCalls) -> tuple[str, str]:
        """(current ARN, target ARN); Refused when there is nothing to roll back to."""
        current = await self._definition(calls, str((await active_service(calls, params))["taskDefinition"]))
        if params.task_definition is not None:
            try:
                target = str((await self._definition(calls, params.task_definition))["taskDefinitionArn"])
            except AwsCallError as err:
                raise Refused(FailureReason.PRECHECK_FAILED,
                              f"task definition {params.task_definition} not found ({err})") from err
        else:
            target = await self._previous(calls, current["family"], int(current["revision"]))
        if target == current["taskDefinitionArn"]:
            raise Refused(FailureReason.PRECHECK_FAILED, f"{target} is already the service's task definition")
        return str(current["taskDefinitionArn"]), target

    def _call(self, params: RollbackParams, target: str) -> PlannedCall:
        return PlannedCall("ecs", "UpdateService",
                           {"cluster": params.cluster, "service": params.service, "taskDefinition": target})

    async def precheck(self, params: RollbackParams, ctx: ActionContext) -> str | None:
        try:
            await self._resolve(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused) as err:
            return str(err)
        return None

    async def plan_calls(self, params: RollbackParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        try:
            _, target = await self._resolve(params, aws_calls(ctx, read_only=True))
        except (AwsCallError, Refused):
            return []
        return [self._call(params, target)]

    async def run(self, params: RollbackParams, ctx: ActionContext) -> Execution:
        calls = aws_calls(ctx)
        try:
            current, target = await self._resolve(params, calls)
            await calls.run(self._call(params, target))
        except Refused as refused:
            return calls.refused(refused.reason, refused.message)
        except AwsCallError as err:
            return calls.failed(err)
        return calls.succeeded(previous_task_definition=current, task_definition=target)

    async def verify(self, params: RollbackParams, ctx: ActionContext) -> bool | None:
        return await not_yet_on_error(self._rolled_back(params, ctx))

    async def _rolled_back(self, params: RollbackParams, ctx: ActionContext) -> bool:
        calls = aws_calls(ctx, read_only=True)
        service = await describe_service(calls, params)
        wanted = recorded(ctx, "task_definition")
        if wanted is not None and service.get("taskDefinition") != wanted:
            return False
        return primary_deployment(service).get("rolloutState") == "COMPLETED" and await alarm_ok(calls, params)
