"""`notify.webhook`: post a message to a configured webhook (JSON or Slack-compatible).

The message is plain text; the target's format (`notification.FORMATS`) encodes it.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from pydantic import Field

from remediator.actions.base import Action, ActionContext, ActionParams, PeopleText, PlannedCall
from remediator.actions.notification import Notification
from remediator.model import Execution, FailureReason
from remediator.settings import NotifyTarget

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


async def post_notification(
    session: aiohttp.ClientSession, target: NotifyTarget, notification: Notification
) -> Execution:
    """One POST with a timeout; 5xx, 429 and transport errors are retryable, other 4xx are not."""
    headers = {k: v.get_secret_value() for k, v in target.headers.items()}
    timeout = aiohttp.ClientTimeout(total=target.timeout.total_seconds())
    try:
        async with session.post(
            target.url, json=notification.body(target.format), headers=headers,
            timeout=timeout, allow_redirects=False,
        ) as response:
            status = response.status
    except TimeoutError:
        return Execution.failed(FailureReason.TIMEOUT, "webhook did not answer in time", retryable=True)
    except aiohttp.ClientError as exc:
        return Execution.failed(FailureReason.CONNECTION, type(exc).__name__, retryable=True)
    if 200 <= status < 300:
        return Execution.succeeded(status=status)
    if status == 429:
        return Execution.failed(FailureReason.THROTTLED, "webhook answered 429", retryable=True, status=status)
    if status >= 500:
        return Execution.failed(FailureReason.SERVER_ERROR, f"webhook answered {status}", retryable=True,
                                status=status)
    return Execution.failed(FailureReason.VALIDATION, f"webhook answered {status}", status=status)


class NotifyParams(ActionParams):
    to: str = Field(pattern=IDENTIFIER, description="name of a target under `notify:` in settings")
    text: PeopleText = Field(min_length=1, max_length=4000)
    title: PeopleText = Field("", max_length=200)


class NotifyWebhook(Action[NotifyParams]):
    """Post a message to a webhook named in settings (the URL never comes from an alert).

    ```yaml
    type: notify.webhook
    params:
      to: oncall
      title: "{alert.name} on {labels.instance}"
      text: "{annotations.summary}"
    ```
    """

    type_name = "notify.webhook"
    Params = NotifyParams
    permissions = ()
    needs_coordination = False
    budgeted = False
    exclusive = False
    changes_nothing = True

    def target(self, params: NotifyParams) -> str:
        return f"notify:{params.to}"

    def _target(self, params: NotifyParams, ctx: ActionContext) -> NotifyTarget | None:
        return ctx.deps.settings.notify.get(params.to)

    def refusal(self, params: NotifyParams, ctx: ActionContext) -> str | None:
        if self._target(params, ctx) is None:
            return f"no notify target named {params.to!r} in settings"
        return None

    def _notification(self, params: NotifyParams, ctx: ActionContext) -> Notification:
        request = ctx.request
        link = f"{ctx.deps.settings.base_url}/console/incidents/{request.incident_id}"
        return Notification(params.title or f"remediator: {request.policy}", params.text,
                            request.severity.value, link,
                            (("incident", request.incident_id), ("policy", request.policy)))

    async def plan_calls(self, params: NotifyParams, ctx: ActionContext) -> Sequence[PlannedCall]:
        target = self._target(params, ctx)
        fmt = target.format if target else "json"
        return [PlannedCall("http", "POST", {"to": params.to, "body": self._notification(params, ctx).body(fmt)})]

    async def run(self, params: NotifyParams, ctx: ActionContext) -> Execution:
        target = self._target(params, ctx)
        if target is None or ctx.deps.http is None:
            return Execution.failed(FailureReason.PRECHECK_FAILED, f"notify target {params.to!r} unavailable")
        return await post_notification(ctx.deps.http, target, self._notification(params, ctx))
