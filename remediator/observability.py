"""Prometheus metrics (every bounded label set pre-initialised) and structlog JSON logs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from remediator.model import ApprovalStatus, DecisionReason, FailureReason, Outcome, Severity, Verdict

SOURCES = ("alertmanager", "sns")
NOTIFICATION_PURPOSES = ("approval_requested", "approval_reminder", "approval_expired", "escalation")
# Why a webhook request was refused before anything was recorded (web/webhooks.py REJECTION_RESULT).
REJECTION_REASONS = ("bad_request", "unauthorized", "too_large")
INGEST_RESULTS = ("accepted", "duplicate", "bad_request", "unauthorized", "too_large", "store_unavailable")
SNS_DELIVERY_TYPES = ("notification", "subscription_confirmation", "unsubscribe_confirmation", "raw", "unknown")
# The verifier's results (sources.sns_message.VerifyResult); "authenticated": a raw delivery with its
# path's secret (no signature to verify); and what is decided before the verifier runs.
SNS_DELIVERY_RESULTS = ("verified", "malformed", "unknown_topic", "stale", "bad_cert_url", "bad_certificate",
                        "bad_signature", "cert_fetch_failed", "authenticated", "raw_refused", "unauthorized",
                        "too_large")
SNS_CONFIRMATION_RESULTS = ("confirmed", "refused", "failed")
# Why a console sign-in failed (web/console_auth.py REFUSALS).
SIGN_IN_FAILURES = ("unknown_token", "expired_form", "cross_site", "throttled")
DECISION_PAIRS = [(Verdict.ALLOW, DecisionReason.ALLOWED), (Verdict.ALLOW, DecisionReason.APPROVED),
                  (Verdict.HOLD, DecisionReason.APPROVAL_REQUIRED)] + [
    (Verdict.DENY, r) for r in DecisionReason if r not in (DecisionReason.ALLOWED, DecisionReason.APPROVED,
                                                          DecisionReason.APPROVAL_REQUIRED)]


class Metrics:
    """The daemon's metrics, on a registry of its own (several apps can live in one test process)."""

    def __init__(self, action_types: Iterable[str] = ()) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.alerts_received = Counter("remediator_alerts_received_total",
                                       "Alerts received, by source and what became of them", ["source", "result"],
                                       registry=r)
        self.requests_rejected = Counter("remediator_webhook_rejected_total",
                                         "Webhook requests refused before any alert was recorded", ["source", "reason"],
                                         registry=r)
        self.duplicates = Counter("remediator_duplicates_total",
                                  "Deliveries and requests recognised as already seen", ["kind"], registry=r)
        self.decisions = Counter("remediator_decisions_total", "Guardrail decisions, by verdict and reason",
                                 ["verdict", "reason"], registry=r)
        self.actions = Counter("remediator_actions_total", "Action requests by type and outcome",
                               ["action", "outcome"], registry=r)
        self.action_failures = Counter("remediator_action_failures_total", "Failed executions by reason",
                                       ["action", "reason"], registry=r)
        self.action_duration = Histogram("remediator_action_duration_seconds", "Time an action took to run",
                                         ["action"], registry=r,
                                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300))
        self.action_retries = Counter("remediator_action_retries_total", "Retries of retryable failures",
                                      ["action"], registry=r)
        self.queue_depth = Gauge("remediator_queue_depth", "Alerts waiting for an engine worker", registry=r)
        self.backlog = Gauge("remediator_backlog", "Recorded alerts not yet processed (last count)", registry=r)
        self.alerts_processed = Counter("remediator_alerts_processed_total", "Alerts through the pipeline",
                                        registry=r)
        self.pipeline_errors = Counter("remediator_pipeline_errors_total", "Alerts whose processing failed",
                                       registry=r)
        self.open_incidents = Gauge("remediator_open_incidents", "Open incidents by severity", ["severity"],
                                    registry=r)
        self.incidents_opened = Counter("remediator_incidents_opened_total", "Incidents opened", ["severity"],
                                        registry=r)
        self.timers_fired = Counter("remediator_timers_fired_total", "Durable timers fired", ["kind"], registry=r)
        self.verifications = Counter("remediator_verifications_total", "Verification results", ["result"],
                                     registry=r)
        self.sns_deliveries = Counter("remediator_sns_deliveries_total",
                                      "SNS deliveries by message type and verification result", ["type", "result"],
                                      registry=r)
        self.sns_confirmations = Counter("remediator_sns_confirmations_total",
                                         "SubscriptionConfirmations: confirmed, refused (not verified, not "
                                         "allow-listed, or never confirmable) or failed (a retry may succeed)",
                                         ["result"], registry=r)
        self.sns_unsubscriptions = Counter("remediator_sns_unsubscriptions_total",
                                           "Verified UnsubscribeConfirmations: somebody unsubscribed the daemon",
                                           registry=r)
        self.coordination_errors = Counter("remediator_coordination_errors_total",
                                           "Calls to the coordination backend that failed", registry=r)
        self.approvals_requested = Counter("remediator_approvals_requested_total", "Held requests put to people",
                                           ["severity"], registry=r)
        self.approvals_closed = Counter("remediator_approvals_closed_total", "Approvals closed, by how",
                                        ["status"], registry=r)
        self.approvals_pending = Gauge("remediator_approvals_pending", "Approvals waiting for people (last count)",
                                       registry=r)
        self.approval_latency = Histogram("remediator_approval_latency_seconds",
                                          "From a hold to people's decision (approved or rejected)", registry=r,
                                          buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200))
        self.escalations = Counter("remediator_escalations_total", "Escalations to people, by incident severity",
                                   ["severity"], registry=r)
        self.notifications = Counter("remediator_notifications_total", "The daemon's own notifications, by result",
                                     ["purpose", "result"], registry=r)
        self.sla_breaches = Counter("remediator_sla_breaches_total", "Respond and recover targets missed",
                                    ["severity", "target"], registry=r)
        self.sign_in_failures = Counter("remediator_console_sign_in_failures_total",
                                        "Failed console sign-ins, by reason", ["reason"], registry=r)
        self._children: dict[tuple[object, ...], Any] = {}
        self._initialise(action_types)

    def counter(self, sample_name: str) -> Counter | None:
        """The counter that exposes `sample_name` (`…_total`), if it is one of ours."""
        for value in vars(self).values():
            if isinstance(value, Counter) and f"{value._name}_total" == sample_name:
                return value
        return None

    def child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: the hot path asks for the same few children."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*(str(label) for label in labels))
        return found

    def _initialise(self, action_types: Iterable[str]) -> None:
        for source in SOURCES:
            for result in INGEST_RESULTS:
                self.alerts_received.labels(source, result)
            for reason in REJECTION_REASONS:  # from zero, so the first refusals show in increase()
                self.requests_rejected.labels(source, reason)
        for kind in ("delivery", "request"):
            self.duplicates.labels(kind)
        for verdict, reason in DECISION_PAIRS:
            self.decisions.labels(verdict.value, reason.value)
        for action in action_types:
            self.add_action_type(action)
        for severity in Severity:
            self.open_incidents.labels(severity.value)
            self.incidents_opened.labels(severity.value)
        for result in ("recovered", "not_recovered", "next_step", "escalated"):
            self.verifications.labels(result)
        self._initialise_people()
        self._initialise_sns()

    def _initialise_people(self) -> None:
        """Label sets of approvals, escalations, notifications and targets."""
        for severity in Severity:
            self.approvals_requested.labels(severity.value)
            self.escalations.labels(severity.value)
            for target in ("respond", "recover"):
                self.sla_breaches.labels(severity.value, target)
        for status in ApprovalStatus:
            if status is not ApprovalStatus.PENDING:
                self.approvals_closed.labels(status.value)
        for purpose in NOTIFICATION_PURPOSES:
            for result in ("sent", "failed", "dry_run"):
                self.notifications.labels(purpose, result)
        for reason in SIGN_IN_FAILURES:
            self.sign_in_failures.labels(reason)

    def _initialise_sns(self) -> None:
        for delivery_type in SNS_DELIVERY_TYPES:
            for result in SNS_DELIVERY_RESULTS:
                self.sns_deliveries.labels(delivery_type, result)
        for result in SNS_CONFIRMATION_RESULTS:
            self.sns_confirmations.labels(result)

    def add_action_type(self, action: str) -> None:
        for outcome in Outcome:
            self.actions.labels(action, outcome.value)
        for reason in FailureReason:
            self.action_failures.labels(action, reason.value)
        self.action_duration.labels(action)
        self.action_retries.labels(action)


def configure_logging(level: str = "info", fmt: str = "json") -> None:
    """structlog to stdout: JSON lines by default, context variables (incident_id ...) merged in."""
    numeric = getattr(logging, level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
