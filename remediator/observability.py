"""Prometheus metrics (every bounded label set pre-initialised) and JSON logs (structlog)."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TextIO, TypeVar

import structlog
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

from remediator.model import ApprovalStatus, DecisionReason, FailureReason, Outcome, Severity, Verdict
from remediator.plaintext import one_line

T = TypeVar("T")

SOURCES = ("alertmanager", "sns")
NOTIFICATION_PURPOSES = ("approval_requested", "approval_reminder", "approval_expired", "escalation",
                         "executive_report", "deadline")
# Why a webhook request was refused before anything was recorded (web/webhooks.py REJECTION_RESULT).
REJECTION_REASONS = ("bad_request", "unauthorized", "too_large", "unsupported_encoding")
INGEST_RESULTS = ("accepted", "duplicate", "bad_request", "unauthorized", "too_large", "store_unavailable")
SNS_DELIVERY_TYPES = ("notification", "subscription_confirmation", "unsubscribe_confirmation", "raw", "unknown")
# The verifier's results (sources.sns_message.VerifyResult); "authenticated": a raw delivery with its
# path's secret (no signature to verify); and what is decided before the verifier runs.
SNS_DELIVERY_RESULTS = ("verified", "malformed", "unknown_topic", "stale", "bad_cert_url", "bad_certificate",
                        "bad_signature", "cert_fetch_failed", "authenticated", "raw_refused", "unauthorized",
                        "too_large", "unsupported_encoding")
RETENTION_KINDS = ("alerts", "incidents", "audit", "timers")  # stores.retention.Kind
SNS_CONFIRMATION_RESULTS = ("confirmed", "refused", "failed")
# Why a console sign-in failed (web/console_auth.py REFUSALS).
SIGN_IN_FAILURES = ("unknown_token", "expired_form", "cross_site", "throttled")
DECISION_PAIRS = [(Verdict.ALLOW, DecisionReason.ALLOWED), (Verdict.ALLOW, DecisionReason.APPROVED),
                  (Verdict.HOLD, DecisionReason.APPROVAL_REQUIRED)] + [
    (Verdict.DENY, r) for r in DecisionReason if r not in (DecisionReason.ALLOWED, DecisionReason.APPROVED,
                                                          DecisionReason.APPROVAL_REQUIRED)]


# prometheus_client leaves this function unannotated; its type is this.
_no_created_series: Callable[[], None] = disable_created_metrics


class StoreGauges(Collector):
    """The gauges read from the store (open incidents, backlog, pending approvals), produced at
    scrape time from the values `refresh` read for that scrape (a collector cannot await the store).
    Until a first reading every label set is 0; when the store cannot answer the last values stay."""

    def __init__(self) -> None:
        self.open_incidents: dict[str, float] = {s.value: 0.0 for s in Severity}
        self.backlog = 0.0
        self.approvals_pending = 0.0

    def update(self, open_incidents: dict[str, int], backlog: int, approvals_pending: int) -> None:
        self.open_incidents = {s.value: float(open_incidents.get(s.value, 0)) for s in Severity}
        self.backlog, self.approvals_pending = float(backlog), float(approvals_pending)

    def collect(self) -> Iterable[Metric]:
        incidents = GaugeMetricFamily("remediator_open_incidents", "Open incidents by severity",
                                      labels=["severity"])
        for severity, count in self.open_incidents.items():
            incidents.add_metric([severity], count)
        yield incidents
        yield GaugeMetricFamily("remediator_backlog", "Recorded alerts not yet processed (at this scrape)",
                                value=self.backlog)
        yield GaugeMetricFamily("remediator_approvals_pending", "Approvals waiting for people (at this scrape)",
                                value=self.approvals_pending)


class Metrics:
    """The daemon's metrics, on a registry of its own (several apps can live in one test process),
    with the process's own (`process_*`, `python_info`) and without `_created` series."""

    def __init__(self, action_types: Iterable[str] = ()) -> None:
        _no_created_series()  # prometheus_client's switch is process-wide; every registry of ours wants it
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.store_gauges = StoreGauges()
        r.register(self.store_gauges)
        self.alerts_received = Counter("remediator_alerts_received_total",
                                       "Alerts received, by source and what became of them", ["source", "result"],
                                       registry=r)
        self.requests_rejected = Counter("remediator_webhook_rejected_total",
                                         "Webhook requests refused before any alert was recorded", ["source", "reason"],
                                         registry=r)
        self.inflated_bytes = Counter("remediator_webhook_inflated_bytes_total",
                                      "Bytes inflated from compressed webhook bodies, always after authentication",
                                      ["source"], registry=r)
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
        self.alerts_processed = Counter("remediator_alerts_processed_total", "Alerts through the pipeline",
                                        registry=r)
        self.pipeline_errors = Counter("remediator_pipeline_errors_total", "Alerts whose processing failed",
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
        self.requests_recovered = Counter("remediator_requests_recovered_total",
                                          "Claimed requests whose holder died or lost them, decided again",
                                          registry=r)
        self.approvals_requested = Counter("remediator_approvals_requested_total", "Held requests put to people",
                                           ["severity"], registry=r)
        self.approvals_closed = Counter("remediator_approvals_closed_total", "Approvals closed, by how",
                                        ["status"], registry=r)
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
        self._store_metrics(r)
        self._children: dict[tuple[object, ...], Any] = {}
        self._initialise(action_types)

    def _store_metrics(self, r: CollectorRegistry) -> None:
        """The store's size and age (read at scrape time), what is left unfinished, and the purge."""
        self.store_size = Gauge("remediator_store_size_bytes", "The store's size on disk (SQLite: file and WAL)",
                                registry=r)
        self.store_size_budget = Gauge("remediator_store_size_budget_bytes",
                                       "retention.size_budget_bytes (0: no budget)", registry=r)
        self.store_rows = Gauge("remediator_store_rows", "Rows per table", ["table"], registry=r)
        self.store_oldest = Gauge("remediator_store_oldest_row_age_seconds",
                                  "Age of the oldest row of each retention kind", ["kind"], registry=r)
        self.unfinished_age = Gauge("remediator_requests_unfinished_oldest_age_seconds",
                                    "Since the alert of the oldest claimed or running request arrived (0: none)",
                                    registry=r)
        self.audit_deferred = Gauge("remediator_audit_deferred",
                                    "Audit records kept in memory because the store could not take them",
                                    registry=r)
        self.retention_deleted = Counter("remediator_retention_deleted_total", "Rows deleted by retention",
                                         ["kind"], registry=r)
        self.retention_exported = Counter("remediator_retention_exported_total",
                                          "Rows exported to the archive before deletion", ["kind"], registry=r)
        self.retention_failures = Counter("remediator_retention_failures_total",
                                          "Purge passes of a kind that failed, by stage (purge, export)",
                                          ["kind", "stage"], registry=r)
        self.retention_last_success = Gauge("remediator_retention_last_success_timestamp_seconds",
                                            "When the last purge pass succeeded for every kind", registry=r)
        for kind in RETENTION_KINDS:
            self.store_oldest.labels(kind)
            self.retention_deleted.labels(kind)
            self.retention_exported.labels(kind)
            for stage in ("purge", "export"):
                self.retention_failures.labels(kind, stage)

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
            self.inflated_bytes.labels(source)
        for kind in ("delivery", "request"):
            self.duplicates.labels(kind)
        for verdict, reason in DECISION_PAIRS:
            self.decisions.labels(verdict.value, reason.value)
        for action in action_types:
            self.add_action_type(action)
        for severity in Severity:
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


# -- logs ----------------------------------------------------------------------------------------
# Every line a process writes is one JSON object: structlog's events and the standard library's
# records (aiohttp, botocore, asyncpg, asyncio, warnings, uncaught exceptions) go through one
# handler and one formatter, which add `timestamp`, `level`, `logger` and `process`, and put an
# exception's traceback into one `traceback` field.

# What a client causes and aiohttp's server reports with a traceback at error level: a request it
# could not parse (request line, headers, framing, a corrupt encoding), or a connection dropped
# mid-request. Nothing in the daemon failed: a warning (malformed) or a note (gone), no traceback.
CLIENT_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access")
MALFORMED_REQUEST: tuple[type[BaseException], ...] = (HttpProcessingError, RequestPayloadError)
CLIENT_GONE: tuple[type[BaseException], ...] = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exc_info(value: Any) -> ExcInfo | None:
    """`exc_info` as logging calls give it (True, an exception, or a sys.exc_info() tuple), normalised."""
    if value is True:
        value = sys.exc_info()
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value[0], value[1], value[2]
    return None


class ProcessName:
    """Adds `process`: which of the daemon's processes wrote the line (core, intake-N)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, logger: Any, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
        event["process"] = self.name
        return event


def client_conditions(logger: Any, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """A malformed request or a client gone, reported by aiohttp's server: not an error."""
    found = _exc_info(event.get("exc_info"))
    if found is None or not str(event.get("logger", "")).startswith(CLIENT_LOGGERS):
        return event
    exc = found[1]
    if isinstance(exc, MALFORMED_REQUEST):
        event.update(level="warning", event="client_request_malformed")
    elif isinstance(exc, CLIENT_GONE):
        event.update(level="info", event="client_disconnected")
    else:
        return event
    event.pop("exc_info")
    event["error"] = one_line(f"{type(exc).__name__}: {exc}")[:500]
    return event


def traceback_field(logger: Any, method: str, event: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """An exception, if the event carries one, as one `traceback` string."""
    found = _exc_info(event.pop("exc_info", None))
    if found is not None:
        event["traceback"] = "".join(traceback.format_exception(*found))
    return event


def log_formatter(fmt: str, process: str) -> structlog.stdlib.ProcessorFormatter:
    """The one formatter of every log record of a process: JSON lines, or text for people (whose
    renderer prints a traceback under its line)."""
    ending: list[structlog.typing.Processor] = [traceback_field, structlog.processors.JSONRenderer()] \
        if fmt == "json" else [structlog.dev.ConsoleRenderer(colors=False)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.contextvars.merge_contextvars],
        processors=[
            structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True), ProcessName(process), client_conditions,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, *ending,
        ],
    )


def configure_logging(level: str = "info", fmt: str = "json", *, process: str = "core",
                      stream: TextIO | None = None) -> None:
    """Route structlog and the standard library through one handler on `stream` (stdout), for
    this whole process: every line one JSON object (with fmt json). The daemon's own loggers log
    from `level`, other libraries' from warning; uncaught exceptions are logged, not printed."""
    numeric = getattr(logging, level.upper())
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(log_formatter(fmt, process))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    logging.getLogger("remediator").setLevel(numeric)
    logging.captureWarnings(True)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    sys.unraisablehook = _unraisable


def _uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    get_logger("remediator.uncaught").critical("uncaught_exception", exc_info=(kind, exc, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        get_logger("remediator.uncaught").error(
            "uncaught_exception_in_thread", thread=args.thread.name if args.thread else None,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _unraisable(unraisable: Any) -> None:
    exc = unraisable.exc_value
    get_logger("remediator.uncaught").error(
        "unraisable_exception", message=unraisable.err_msg or "Exception ignored in", object=repr(unraisable.object),
        exc_info=(type(exc), exc, unraisable.exc_traceback) if exc is not None else None)


def log_loop_exception(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The event loop's exception handler ("Task exception was never retrieved" and the like)."""
    exc = context.get("exception")
    details = {k: repr(v)[:500] for k, v in context.items() if k not in ("message", "exception")}
    get_logger("asyncio").error("event_loop_exception", message=context.get("message", ""), exc_info=exc,
                                **details)


async def with_loop_logging(main: Awaitable[T]) -> T:
    """Run `main` with the running loop's exceptions logged as JSON events."""
    asyncio.get_running_loop().set_exception_handler(log_loop_exception)
    return await main


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
