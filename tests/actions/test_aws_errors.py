"""AWS failures as actions meet them: botocore's retries, then a classified Execution.

Faults come from the proxy in each protocol's real error shape (json: ECS, WAFv2; cbor:
CloudWatch; query: RDS, ElastiCache; ec2; rest-xml: S3, Route 53), and one access denial
comes from moto's real IAM enforcement.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiobotocore.session import AioSession, get_session
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from remediator.actions.aws.ec2 import IsolateInstance
from remediator.actions.aws.ecs import ForceNewDeployment
from remediator.actions.aws.rds import FailoverCluster
from remediator.actions.aws.route53 import UpsertRecord
from remediator.actions.aws.s3 import PreserveEvidence
from remediator.actions.base import ActionDeps
from remediator.aws.clients import AWS_EXTRA, AwsCalls, AwsClients, ReadOnlyViolation, aws_clients, classify_error
from remediator.clock import FakeClock
from remediator.model import FailureReason, Outcome
from remediator.settings import AwsSettings, Settings
from tests.actions.conftest import TEST_CONFIG
from tests.actions.test_ec2 import make_instance
from tests.actions.test_ecs import SVC, complete_rollout, make_service
from tests.actions.test_rds import CLUSTER, make_cluster
from tests.actions.test_route53 import ZONE_NAME, make_zone
from tests.actions.test_s3 import RAW as EVIDENCE_RAW
from tests.actions.test_s3 import seed
from tests.support.context import CtxFactory, MotoClient
from tests.support.faultproxy import FaultProxy, Rule

FORCE = ForceNewDeployment()
Reclient = Callable[..., Awaitable[AwsClients]]


@pytest.fixture
async def reclient(deps: ActionDeps, aio_session: AioSession) -> AsyncIterator[Reclient]:
    """Swap the actions' clients for ones with other AWS settings (timeouts, attempts)."""
    opened: list[AwsClients] = []

    async def make(**changes: Any) -> AwsClients:
        clients = AwsClients(deps.settings.aws.model_copy(update=changes), config=TEST_CONFIG, session=aio_session)
        await clients.open()
        opened.append(clients)
        deps.extras[AWS_EXTRA] = clients
        return clients

    yield make
    for clients in opened:
        await clients.close()


def statuses(proxy: FaultProxy, operation: str) -> list[int]:
    return [hit.status for hit in proxy.log if hit.operation == operation]


async def force(ctx_for: CtxFactory) -> Any:
    return await FORCE.run(FORCE.Params(**SVC), ctx_for(FORCE, SVC))


async def test_throttled_twice_then_success_counts_the_retries(moto: MotoClient, ctx_for: CtxFactory,
                                                                proxy: FaultProxy) -> None:
    await make_service(moto)
    proxy.add(Rule("UpdateService", times=2, code="ThrottlingException"))
    execution = await force(ctx_for)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert statuses(proxy, "UpdateService") == [400, 400, 200]
    assert execution.detail["retry_attempts"] == 2
    assert {"service": "ecs", "operation": "UpdateService", "retry_attempts": 2} in execution.detail["calls"]


async def test_throttled_forever_is_a_retryable_failure(moto: MotoClient, ctx_for: CtxFactory,
                                                        proxy: FaultProxy) -> None:
    await make_service(moto)
    proxy.add(Rule("UpdateService", times=None, code="ThrottlingException"))
    execution = await force(ctx_for)

    assert execution.outcome is Outcome.FAILED
    assert execution.reason is FailureReason.THROTTLED and execution.retryable is True
    assert statuses(proxy, "UpdateService") == [400, 400, 400]  # botocore's 3 attempts, then the engine's turn
    assert execution.detail["code"] == "ThrottlingException" and execution.detail["retry_attempts"] == 2
    assert "throttled" in execution.detail["error"]


async def test_connection_reset_recovers(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    await make_service(moto)
    proxy.add(Rule("UpdateService", mode="reset", times=2))
    execution = await force(ctx_for)

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert statuses(proxy, "UpdateService") == [0, 0, 200]
    assert execution.detail["retry_attempts"] == 2


async def test_connection_reset_forever_is_a_retryable_connection_failure(moto: MotoClient, ctx_for: CtxFactory,
                                                                          proxy: FaultProxy) -> None:
    await make_service(moto)
    proxy.add(Rule("UpdateService", mode="reset", times=None))
    execution = await force(ctx_for)

    assert execution.reason is FailureReason.CONNECTION and execution.retryable is True
    assert statuses(proxy, "UpdateService") == [0, 0, 0]
    assert execution.detail["retry_attempts"] == 2  # counted by us: botocore reports none when it gives up


async def test_slow_answer_past_the_read_timeout(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                 reclient: Reclient) -> None:
    await make_service(moto)
    await reclient(read_timeout=timedelta(seconds=0.2), max_attempts=2)
    proxy.add(Rule("UpdateService", mode="delay", delay=1.5, times=None))
    execution = await force(ctx_for)

    assert execution.reason is FailureReason.TIMEOUT and execution.retryable is True
    assert "UpdateService" in execution.detail["error"]
    assert execution.detail["retry_attempts"] == 1


async def test_every_call_has_an_overall_deadline(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                                  reclient: Reclient) -> None:
    await make_service(moto)
    await reclient(read_timeout=timedelta(seconds=30), call_timeout=timedelta(seconds=0.3))
    proxy.add(Rule("UpdateService", mode="delay", delay=5, times=None))
    execution = await force(ctx_for)

    assert execution.reason is FailureReason.TIMEOUT and execution.retryable is True
    assert "no answer in time" in execution.detail["error"]


@pytest.mark.parametrize(("status", "code"), [(400, "AccessDeniedException"), (403, "")])
async def test_access_denied_on_a_json_service_is_not_retried(moto: MotoClient, ctx_for: CtxFactory,
                                                              proxy: FaultProxy, status: int, code: str) -> None:
    await make_service(moto)
    proxy.add(Rule("UpdateService", times=None, status=status, code=code, message="not authorized"))
    execution = await force(ctx_for)

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert execution.detail["error"].startswith("access denied: ecs:UpdateService")
    assert len(statuses(proxy, "UpdateService")) == 1


async def test_access_denied_on_a_query_service_is_not_retried(moto: MotoClient, ctx_for: CtxFactory,
                                                               proxy: FaultProxy) -> None:
    await make_cluster(moto)
    proxy.add(Rule("FailoverDBCluster", times=None, status=403, code="AccessDenied"))
    action = FailoverCluster()
    execution = await action.run(action.Params(cluster_id=CLUSTER), ctx_for(action, {"cluster_id": CLUSTER}))

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert "rds:FailoverDBCluster" in execution.detail["error"]
    assert [h for h in proxy.log if h.operation == "FailoverDBCluster"] == [("rds", "query", "FailoverDBCluster", 403)]


async def test_access_denied_by_real_iam_policy(moto: MotoClient, moto_url: str, ctx_for: CtxFactory,
                                                proxy: FaultProxy, deps: ActionDeps,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A user allowed to describe but not to fail over, with moto enforcing IAM for real."""
    await make_cluster(moto)
    iam = await moto("iam")
    await iam.create_user(UserName="remediator-readonly")
    await iam.put_user_policy(UserName="remediator-readonly", PolicyName="describe-only", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["rds:Describe*"], "Resource": "*"}]}'))
    key = (await iam.create_access_key(UserName="remediator-readonly"))["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    request = urllib.request.Request(f"{moto_url}/moto-api/reset-auth", data=b"0", method="POST",
                                     headers={"Content-Type": "text/plain"})
    urllib.request.urlopen(request, timeout=10).read()  # enforcement on; the moto_reset fixture turns it off
    async with AwsClients(deps.settings.aws, config=TEST_CONFIG, session=get_session()) as as_user:
        deps.extras[AWS_EXTRA] = as_user
        action = FailoverCluster()
        execution = await action.run(action.Params(cluster_id=CLUSTER), ctx_for(action, {"cluster_id": CLUSTER}))

    assert execution.reason is FailureReason.ACCESS_DENIED and execution.retryable is False
    assert execution.detail["code"] == "AccessDenied"
    assert statuses(proxy, "DescribeDBClusters") == [200]
    assert statuses(proxy, "FailoverDBCluster") == [403]


async def test_server_errors_on_a_query_service_are_retryable(moto: MotoClient, ctx_for: CtxFactory,
                                                              proxy: FaultProxy) -> None:
    await make_cluster(moto)
    proxy.add(Rule("DescribeDBClusters", times=None, status=500, code="InternalFailure"))
    action = FailoverCluster()
    execution = await action.run(action.Params(cluster_id=CLUSTER), ctx_for(action, {"cluster_id": CLUSTER}))

    assert execution.reason is FailureReason.SERVER_ERROR and execution.retryable is True
    assert statuses(proxy, "DescribeDBClusters") == [500, 500, 500]


async def test_an_unreadable_500_is_a_retryable_server_error(moto: MotoClient, ctx_for: CtxFactory,
                                                             proxy: FaultProxy) -> None:
    """What moto sends for an operation it lacks: HTML, not an AWS error."""
    await make_cluster(moto)
    proxy.add(Rule("DescribeDBClusters", mode="canned", times=None, status=500, headers={"Content-Type": "text/html"},
                   body=b"<!doctype html><title>500 Internal Server Error</title>"))
    action = FailoverCluster()
    execution = await action.run(action.Params(cluster_id=CLUSTER), ctx_for(action, {"cluster_id": CLUSTER}))
    assert execution.reason is FailureReason.SERVER_ERROR and execution.retryable is True


async def test_ec2_request_limit_exceeded_is_retried(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    made = await make_instance(moto)
    proxy.add(Rule("DescribeInstances", times=2, status=503, code="RequestLimitExceeded"))
    action = IsolateInstance()
    raw = {"instance_id": made["id"], "quarantine_group_id": made["quarantine"]}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert statuses(proxy, "DescribeInstances") == [503, 503, 200]
    assert [h.protocol for h in proxy.log if h.operation == "DescribeInstances"] == ["ec2"] * 3


async def test_s3_slow_down_is_retried(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                       clock: FakeClock) -> None:
    await seed(moto, clock, {"alb/1.log": b"evidence"})
    proxy.add(Rule("PUT /erp-forensics/*1.log", times=1, status=503, code="SlowDown"))
    action = PreserveEvidence()
    execution = await action.run(action.Params(**EVIDENCE_RAW), ctx_for(action, EVIDENCE_RAW))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert execution.detail["retry_attempts"] == 1


async def test_route53_throttling_is_retried(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    zone = await make_zone(moto)
    proxy.add(Rule("POST /2013-04-01/hostedzone/*/rrset*", times=2, status=400, code="Throttling"))
    action = UpsertRecord()
    raw = {"hosted_zone_id": zone, "name": f"api.{ZONE_NAME}", "type": "A", "values": ["198.51.100.20"]}
    execution = await action.run(action.Params(**raw), ctx_for(action, raw))

    assert execution.outcome is Outcome.SUCCEEDED, execution.detail
    assert [h.status for h in proxy.log if h.operation.startswith("POST")] == [400, 400, 200]


async def test_cloudwatch_throttling_in_verify(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy) -> None:
    """CloudWatch offers cbor, json and query; this botocore picks json (the cbor error shape is
    checked against botocore's cbor parser in test_faultproxy.py)."""
    await make_service(moto)
    await (await moto("cloudwatch")).put_metric_alarm(
        AlarmName="erp-api-5xx", MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    raw = {**SVC, "verify_alarm": "erp-api-5xx"}
    params = FORCE.Params(**raw)
    execution = await FORCE.run(params, ctx_for(FORCE, raw))
    complete_rollout()
    proxy.add(Rule("DescribeAlarms", times=2, code="ThrottlingException"))
    assert await FORCE.verify(params, ctx_for(FORCE, raw, execution=execution)) is True
    assert [(h.service, h.status) for h in proxy.log if h.operation == "DescribeAlarms"] == [
        ("monitoring", 400), ("monitoring", 400), ("monitoring", 200)]

    proxy.add(Rule("DescribeAlarms", times=None, code="ThrottlingException"))
    assert await FORCE.verify(params, ctx_for(FORCE, raw, execution=execution)) is False  # unknown is not OK


async def test_verify_is_false_while_the_alarm_fires(moto: MotoClient, ctx_for: CtxFactory) -> None:
    await make_service(moto)
    cloudwatch = await moto("cloudwatch")
    await cloudwatch.put_metric_alarm(
        AlarmName="erp-api-5xx", MetricName="HTTPCode_Target_5XX_Count", Namespace="AWS/ApplicationELB",
        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=10, ComparisonOperator="GreaterThanThreshold")
    await cloudwatch.set_alarm_state(AlarmName="erp-api-5xx", StateValue="ALARM", StateReason="5xx up")
    raw = {**SVC, "verify_alarm": "erp-api-5xx"}
    params = FORCE.Params(**raw)
    execution = await FORCE.run(params, ctx_for(FORCE, raw))
    complete_rollout()
    ctx = ctx_for(FORCE, raw, execution=execution)

    assert await FORCE.verify(params, ctx) is False
    await cloudwatch.set_alarm_state(AlarmName="erp-api-5xx", StateValue="OK", StateReason="recovered")
    assert await FORCE.verify(params, ctx) is True
    missing = FORCE.Params(**{**SVC, "verify_alarm": "no-such-alarm"})
    assert await FORCE.verify(missing, ctx) is False


def client_error(code: str, status: int, attempts: int = 0) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"},
                        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": attempts}}, "UpdateService")


@pytest.mark.parametrize(("error", "reason", "retryable"), [
    (client_error("Throttling", 400), FailureReason.THROTTLED, True),
    (client_error("TooManyRequestsException", 429), FailureReason.THROTTLED, True),
    (client_error("RequestLimitExceeded", 503), FailureReason.THROTTLED, True),
    (client_error("SlowDown", 503), FailureReason.THROTTLED, True),
    (client_error("InternalError", 500), FailureReason.SERVER_ERROR, True),
    (client_error("ServiceUnavailable", 503), FailureReason.SERVER_ERROR, True),
    (client_error("SomethingNew", 502), FailureReason.SERVER_ERROR, True),
    (client_error("AccessDenied", 403), FailureReason.ACCESS_DENIED, False),
    (client_error("UnauthorizedOperation", 403), FailureReason.ACCESS_DENIED, False),
    (client_error("403", 403), FailureReason.ACCESS_DENIED, False),
    (client_error("ValidationException", 400), FailureReason.VALIDATION, False),
    (client_error("InvalidParameterCombination", 400), FailureReason.VALIDATION, False),
    (client_error("ClientException", 400), FailureReason.VALIDATION, False),
    (client_error("ServiceNotFoundException", 400), FailureReason.NOT_FOUND, False),
    (client_error("DBClusterNotFoundFault", 404), FailureReason.NOT_FOUND, False),
    (client_error("WAFNonexistentItemException", 400), FailureReason.NOT_FOUND, False),
    (client_error("NoSuchBucket", 404), FailureReason.NOT_FOUND, False),
    (client_error("InvalidInstanceID.NotFound", 400), FailureReason.NOT_FOUND, False),
    (client_error("WAFOptimisticLockException", 400), FailureReason.CONFLICT, True),
    (client_error("InvalidDBClusterStateFault", 400), FailureReason.CONFLICT, False),
    (client_error("WAFLimitsExceededException", 400), FailureReason.LIMIT_EXCEEDED, False),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), FailureReason.CONNECTION, True),
    (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), FailureReason.CONNECTION, True),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), FailureReason.TIMEOUT, True),
    (TimeoutError(), FailureReason.TIMEOUT, True),
])
def test_classify_error(error: BaseException, reason: FailureReason, retryable: bool) -> None:
    failure = classify_error(error, service="ecs", operation="UpdateService")
    assert (failure.reason, failure.retryable) == (reason, retryable)
    assert failure.execution().reason is reason


def test_access_denied_message_names_the_operation() -> None:
    failure = classify_error(client_error("AccessDeniedException", 400, attempts=0), service="ecs")
    assert failure.message == "access denied: ecs:UpdateService (AccessDeniedException)"


async def test_clients_are_cached_per_service_and_region_and_closed(settings: Settings,
                                                                    aio_session: AioSession) -> None:
    clients = AwsClients(settings.aws, session=aio_session)
    with pytest.raises(RuntimeError, match="not open"):
        await clients.client("ecs")
    async with clients:
        ecs = await clients.client("ecs")
        assert await clients.client("ecs") is ecs
        assert await clients.client("ecs", "eu-west-1") is not ecs
        assert ecs.meta.config.retries == {"mode": "standard", "total_max_attempts": 3}
        assert ecs.meta.config.read_timeout == settings.aws.read_timeout.total_seconds()
    with pytest.raises(RuntimeError, match="not open"):
        await clients.client("ecs")


def test_missing_clients_in_deps_is_a_clear_error(settings: Settings, clock: FakeClock) -> None:
    with pytest.raises(LookupError, match="cleanup context"):
        aws_clients(ActionDeps(settings=settings, clock=clock))


async def test_dry_run_contexts_cannot_mutate(moto: MotoClient, ctx_for: CtxFactory, proxy: FaultProxy,
                                              clients: AwsClients) -> None:
    await make_service(moto)
    with pytest.raises(ReadOnlyViolation):
        await FORCE.run(FORCE.Params(**SVC), ctx_for(FORCE, SVC, dry_run=True))
    with pytest.raises(ReadOnlyViolation):
        await AwsCalls(clients, read_only=True).call("ecs", "UpdateService", {"cluster": "x", "service": "y"})
    assert "UpdateService" not in proxy.operations()


def test_default_settings_are_safe() -> None:
    aws = AwsSettings()
    assert aws.max_attempts >= 1 and aws.call_timeout > aws.read_timeout
    assert any(net.version == 6 for net in aws.waf.never_block)
