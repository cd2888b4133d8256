"""Webhook intake: authenticate, bound, parse, record durably, queue, answer.

The answer is 2xx only once every alert of the request is committed to the store; 4xx for input
that will never be valid (nothing recorded); 503 when the store cannot write, so the sender retries.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from remediator.errors import BadRequest, StoreUnavailable
from remediator.model import Alert
from remediator.observability import get_logger
from remediator.settings import is_loopback
from remediator.sources.alertmanager import SOURCE as ALERTMANAGER
from remediator.sources.alertmanager import parse_alertmanager
from remediator.web.bodies import read_inflated_body
from remediator.web.common import (
    BEARER_CHALLENGE,
    basic_credentials,
    basic_matches,
    bearer_token,
    constant_time_in,
    error_response,
    json_response,
)
from remediator.web.keys import DEPS, INTAKE

log = get_logger("remediator.web")

REJECTION_RESULT = {400: "bad_request", 401: "unauthorized", 403: "unauthorized", 413: "too_large",
                    415: "unsupported_encoding"}


async def accept(request: web.Request, source: str, alerts: Sequence[Alert]) -> web.Response:
    """Record the alerts (durably, deduplicated), queue the new ones, answer 200 — or 503."""
    response, _ = await accept_new(request, source, alerts)
    return response


async def accept_new(request: web.Request, source: str, alerts: Sequence[Alert]) -> tuple[web.Response, list[Alert]]:
    """`accept`, also saying which alerts were new (none unless the answer is 200)."""
    deps, intake = request.app[DEPS], request.app[INTAKE]
    metrics = deps.metrics
    if not intake.accepting:
        return json_response({"error": "stopping", "detail": "the daemon is shutting down; retry"}, 503), []
    try:
        fresh = await intake.record(alerts)
    except BadRequest as error:
        return reject(request, source, error), []
    except StoreUnavailable as exc:
        metrics.alerts_received.labels(source, "store_unavailable").inc(len(alerts))
        log.warning("store_unavailable", source=source, error=str(exc))
        return json_response({"error": "store_unavailable", "detail": "alerts could not be stored; retry"}, 503), []
    new = [alert for alert, is_new in zip(alerts, fresh, strict=True) if is_new]
    duplicates = len(alerts) - len(new)
    metrics.alerts_received.labels(source, "accepted").inc(len(new))
    if duplicates:
        metrics.alerts_received.labels(source, "duplicate").inc(duplicates)
        metrics.duplicates.labels("delivery").inc(duplicates)
    return json_response({"accepted": len(new), "duplicates": duplicates}), new


def reject(request: web.Request, source: str, error: BadRequest, *, challenge: str = BEARER_CHALLENGE) -> web.Response:
    """Count and answer a refused request; nothing has been recorded."""
    request.app[DEPS].metrics.requests_rejected.labels(source, REJECTION_RESULT.get(error.status, "bad_request")).inc()
    log.info("webhook_rejected", source=source, status=error.status, error=error.error, detail=error.detail,
             remote=request.remote)
    return error_response(error, challenge=challenge)


def _authenticate_alertmanager(request: web.Request) -> None:
    settings = request.app[DEPS].settings.alertmanager
    token = bearer_token(request)
    if token is not None and constant_time_in(token, [t.get_secret_value() for t in settings.bearer_tokens]):
        return
    basic = basic_credentials(request)
    if basic is not None and basic_matches(basic, settings.basic_auth):
        return
    if token is None and basic is None and settings.allow_anonymous_loopback and is_loopback(request.remote):
        return
    if not settings.bearer_tokens and not settings.basic_auth and not settings.allow_anonymous_loopback:
        raise BadRequest(401, "unauthorized", "no credentials are configured for this webhook "
                         "(alertmanager.bearer_tokens or alertmanager.basic_auth)")
    raise BadRequest(401, "unauthorized", "missing or wrong credentials")


async def alertmanager(request: web.Request) -> web.Response:
    deps = request.app[DEPS]
    try:
        _authenticate_alertmanager(request)  # before a byte is read: inflating is work done for the sender
        body = await read_inflated_body(request, deps.settings.max_body_bytes,
                                        deps.metrics.inflated_bytes.labels(ALERTMANAGER).inc)
        alerts = parse_alertmanager(body, deps.clock.now())
    except BadRequest as error:
        return reject(request, ALERTMANAGER, error)
    return await accept(request, ALERTMANAGER, alerts)

