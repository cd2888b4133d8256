"""The daemon's own messages to people (approvals, reminders, expiry, escalations).

They go to notify targets named in settings, through the same machinery as the
`notify.webhook` action (`post_notification`), with a few quick retries: a page that does not
get out is worse than a late one. In dry-run mode nothing is posted; the log says what would
have been.
"""

from __future__ import annotations

from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential_jitter

from remediator.actions.notification import Notification
from remediator.actions.notify import post_notification
from remediator.deps import Deps
from remediator.model import Execution, FailureReason, Outcome
from remediator.observability import get_logger

log = get_logger("remediator.notifier")

ATTEMPTS = 3


class Notifier:
    """Posts a Notification to a named notify target and says how it went."""

    def __init__(self, deps: Deps, initial_wait: float = 0.5) -> None:
        self.deps = deps
        self.initial_wait = initial_wait

    async def post(self, target_name: str, notification: Notification, purpose: str) -> Execution:
        """Never raises: the answer says sent, failed (why) or dry-run."""
        target = self.deps.settings.notify.get(target_name) if target_name else None
        bound = log.bind(purpose=purpose, target=target_name or None, title=notification.title)
        if target is None:
            bound.error("notification_not_sent", reason="no such notify target")
            execution = Execution.failed(FailureReason.VALIDATION, f"no notify target named {target_name!r}")
        elif self.deps.dry_run:
            bound.info("notification_dry_run", body=notification.body(target.format))
            execution = Execution(Outcome.DRY_RUN)
        elif self.deps.actions.http is None:
            execution = Execution.failed(FailureReason.CONNECTION, "no HTTP client (the daemon is not running)")
        else:
            http = self.deps.actions.http
            retrying = AsyncRetrying(stop=stop_after_attempt(ATTEMPTS),
                                     wait=wait_exponential_jitter(multiplier=self.initial_wait, max=5),
                                     retry=retry_if_result(lambda e: e.outcome is Outcome.FAILED and e.retryable),
                                     retry_error_callback=lambda state: state.outcome.result() if state.outcome
                                     else None)
            execution = await retrying(post_notification, http, target, notification)
        result = {Outcome.SUCCEEDED: "sent", Outcome.DRY_RUN: "dry_run"}.get(execution.outcome, "failed")
        self.deps.metrics.notifications.labels(purpose, result).inc()
        if result == "failed":
            bound.error("notification_failed", error=execution.detail.get("error"))
        return execution


def sent_to(results: dict[str, Execution]) -> dict[str, str]:
    """What became of each target's message, for timeline events."""
    return {name: execution.outcome.value + (f" ({execution.detail.get('error')})"
                                             if execution.outcome is Outcome.FAILED else "")
            for name, execution in results.items()}
