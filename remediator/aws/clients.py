"""AWS access for actions: one aiobotocore session, cached clients, bounded calls, classified errors.

The app opens one `AwsClients` in its cleanup context and puts it in `ActionDeps.extras["aws"]`;
actions reach it through `aws_calls(ctx)`, which gives them an `AwsCalls`: the calls of one run,
each under a deadline, with botocore's retries counted and every AWS failure turned into an
`AwsCallError` that carries its classification. Actions never retry by themselves: botocore makes
its bounded attempts (standard mode), then the action returns a failed `Execution` that says
whether the engine may try again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping
from contextlib import AsyncExitStack
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import aiohttp
from aiobotocore.session import AioSession, get_session
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.parsers import ResponseParserError

from remediator.aws.errors import AwsFailure, classify_code
from remediator.model import Execution, FailureReason

if TYPE_CHECKING:
    from remediator.actions.base import ActionContext, ActionDeps, PlannedCall
    from remediator.settings import AwsSettings

AWS_EXTRA = "aws"  # the key of `AwsClients` in `ActionDeps.extras`
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Head")
# Errors an AWS call may raise that are about AWS or the network, not about our code.
AWS_ERRORS = (ClientError, BotoCoreError, ResponseParserError, aiohttp.ClientError, OSError, TimeoutError)

# Counts HTTP attempts of the call running in this task (botocore reports none when it gives up).
_ATTEMPTS: ContextVar[list[int] | None] = ContextVar("remediator_aws_attempts", default=None)


def _count_attempt(**_: Any) -> None:
    box = _ATTEMPTS.get()
    if box is not None:
        box[0] += 1


def _add_content_md5(request: Any, **_: Any) -> None:
    # Writes into an Object Lock bucket need an integrity header (S3 rule that moto enforces on
    # CopyObject too). CopyObject has no body, so the MD5 of the empty body is simply true.
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes) and "Content-MD5" not in request.headers:
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        request.headers["Content-MD5"] = base64.b64encode(digest).decode()


def client_config(settings: AwsSettings) -> Config:
    """The botocore Config the daemon uses: standard retries, bounded connect and read times."""
    return Config(
        # botocore's "max_attempts" counts retries after the first try; "total_max_attempts"
        # counts every try, which is what `aws.max_attempts` means.
        retries={"mode": "standard", "total_max_attempts": settings.max_attempts},
        connect_timeout=settings.connect_timeout.total_seconds(),
        read_timeout=settings.read_timeout.total_seconds(),
    )


def is_read_only(operation: str) -> bool:
    """True for operations that only read (what dry-run, precheck and verify may call)."""
    return operation.startswith(READ_ONLY_PREFIXES)


class AwsClients:
    """One aiobotocore session and its clients, created on first use per (service, region).

    Credentials come from the standard chain. `config` is merged over the one built from settings
    (tests pass small retry counts or S3 path addressing); `endpoint_url` overrides settings.
    """

    def __init__(
        self,
        settings: AwsSettings,
        *,
        config: Config | None = None,
        endpoint_url: str | None = None,
        session: AioSession | None = None,
    ) -> None:
        self.settings = settings
        base = client_config(settings)
        self._config = base.merge(config) if config is not None else base
        self._endpoint_url = endpoint_url or settings.endpoint_url
        self._session = session or get_session()
        self._stack: AsyncExitStack | None = None
        self._clients: dict[tuple[str, str], Any] = {}
        self._lock = asyncio.Lock()

    @property
    def call_timeout(self) -> float:
        return self.settings.call_timeout.total_seconds()

    async def open(self) -> None:
        if self._stack is None:
            self._stack = AsyncExitStack()

    async def close(self) -> None:
        stack, self._stack = self._stack, None
        self._clients.clear()
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> AwsClients:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def client(self, service: str, region: str | None = None) -> Any:
        """The cached client of `service` in `region` (settings' region when None)."""
        key = (service, region or self.settings.region)
        found = self._clients.get(key)
        if found is not None:
            return found
        async with self._lock:
            if key in self._clients:
                return self._clients[key]
            if self._stack is None:
                raise RuntimeError("AwsClients is not open: the app opens it in its cleanup context")
            client = await self._stack.enter_async_context(self._session.create_client(
                service, region_name=key[1], endpoint_url=self._endpoint_url, config=self._config))
            client.meta.events.register("before-send", _count_attempt)
            if service == "s3":
                client.meta.events.register("before-sign.s3.CopyObject", _add_content_md5)
            self._clients[key] = client
            return client


def aws_clients(deps: ActionDeps) -> AwsClients:
    """The `AwsClients` in `deps.extras["aws"]`; a clear error when the app did not put one there."""
    clients = deps.extras.get(AWS_EXTRA)
    if not isinstance(clients, AwsClients):
        raise LookupError(f"ActionDeps.extras[{AWS_EXTRA!r}] holds no AwsClients: open one in the app's "
                          "cleanup context and pass it to the actions' deps")
    return clients


def aws_calls(ctx: ActionContext, *, read_only: bool = False) -> AwsCalls:
    """A fresh call log for one run, plan, precheck or verify; dry-run contexts are always read-only."""
    return AwsCalls(aws_clients(ctx.deps), read_only=read_only or ctx.dry_run)


def classify_error(exc: BaseException, *, service: str = "", operation: str = "") -> AwsFailure:
    """What a failed AWS call means for the engine: reason, retryable, and a message for people."""
    op = f"{service}:{operation}" if service else operation
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        meta = exc.response.get("ResponseMetadata", {})
        code = str(error.get("Code") or "")
        status = meta.get("HTTPStatusCode")
        op = f"{service}:{exc.operation_name}" if service else exc.operation_name
        return classify_code(code, status, str(error.get("Message") or ""), op,
                             retry_attempts=meta.get("RetryAttempts"))
    if isinstance(exc, ReadTimeoutError | TimeoutError):
        return AwsFailure(FailureReason.TIMEOUT, True, f"{op}: no answer in time ({type(exc).__name__})")
    if isinstance(exc, ConnectTimeoutError | EndpointConnectionError | HTTPClientError
                  | aiohttp.ClientError | OSError):
        return AwsFailure(FailureReason.CONNECTION, True, f"{op}: connection failed ({type(exc).__name__})")
    if isinstance(exc, ResponseParserError):
        return AwsFailure(FailureReason.SERVER_ERROR, True, f"{op}: unreadable answer from AWS")
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AwsFailure(FailureReason.ACCESS_DENIED, False, f"access denied: no AWS credentials for {op}")
    if isinstance(exc, ParamValidationError):
        return AwsFailure(FailureReason.VALIDATION, False, f"{op}: invalid parameters: {exc}")
    return AwsFailure(FailureReason.INTERNAL, False, f"{op}: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One AWS call of a run, as it lands in the Execution detail."""

    service: str
    operation: str
    retry_attempts: int
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"service": self.service, "operation": self.operation,
                               "retry_attempts": self.retry_attempts}
        if self.error:
            out["error"] = self.error
        return out


class AwsCallError(Exception):
    """An AWS call failed; `failure` says how (see `classify_error`)."""

    def __init__(self, failure: AwsFailure, service: str, operation: str) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.service = service
        self.operation = operation


class ReadOnlyViolation(RuntimeError):
    """A mutating call was attempted where only reads are allowed (dry-run, precheck, verify)."""


class AwsCalls:
    """The AWS calls of one action run: each bounded by a deadline, counted, and classified.

    `read_only=True` refuses every operation that is not Describe/Get/List/Head before it leaves
    the process: dry-run cannot change anything even if an action has a bug.
    """

    def __init__(self, clients: AwsClients, *, read_only: bool = False) -> None:
        self.clients = clients
        self.read_only = read_only
        self.records: list[CallRecord] = []

    async def call(self, service: str, operation: str, args: Mapping[str, Any] | None = None, *,
                   region: str | None = None) -> dict[str, Any]:
        """Call `operation` (its API name, e.g. "UpdateService"); raise AwsCallError on failure."""
        if self.read_only and not is_read_only(operation):
            raise ReadOnlyViolation(f"{service}:{operation} refused: this context may only read")
        client = await self.clients.client(service, region)
        method = getattr(client, xform_name(operation))
        box = [0]
        token = _ATTEMPTS.set(box)
        try:
            async with asyncio.timeout(self.clients.call_timeout):
                response: dict[str, Any] = await method(**dict(args or {}))
        except AWS_ERRORS as exc:
            failure = classify_error(exc, service=service, operation=operation)
            if box[0]:
                failure = replace(failure, retry_attempts=box[0] - 1)
            self.records.append(CallRecord(service, operation, failure.retry_attempts or 0, failure.reason.value))
            raise AwsCallError(failure, service, operation) from exc
        finally:
            _ATTEMPTS.reset(token)
        meta = response.get("ResponseMetadata", {})
        self.records.append(CallRecord(service, operation, int(meta.get("RetryAttempts", max(box[0] - 1, 0)))))
        return response

    async def run(self, planned: PlannedCall, *, region: str | None = None) -> dict[str, Any]:
        """Make exactly the call a plan describes (what dry-run showed is what runs)."""
        return await self.call(planned.service, planned.operation, planned.args, region=region)

    @property
    def retry_attempts(self) -> int:
        return sum(record.retry_attempts for record in self.records)

    def detail(self) -> dict[str, Any]:
        return {"calls": [r.as_dict() for r in self.records], "retry_attempts": self.retry_attempts}

    def succeeded(self, **detail: Any) -> Execution:
        return Execution.succeeded(**detail, **self.detail())

    def failed(self, error: AwsCallError, **detail: Any) -> Execution:
        """The run's failed Execution for `error`, with what was done before it."""
        # The run's total retries replace the failed call's own count (it is in `calls` too).
        failure = replace(error.failure, retry_attempts=None)
        return failure.execution(operation=f"{error.service}:{error.operation}", **detail, **self.detail())

    def refused(self, reason: FailureReason, message: str, *, retryable: bool = False, **detail: Any) -> Execution:
        """A failure decided by the action itself (a cap, a bound, a precondition)."""
        return Execution.failed(reason, message, retryable=retryable, **detail, **self.detail())
