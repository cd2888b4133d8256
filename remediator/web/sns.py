"""SNS intake: `POST sns.path` (signed envelopes) and the raw-delivery paths (docs/wire-formats.md §1, DESIGN.md §3).

The body is JSON whatever its Content-Type (SNS sends `text/plain`), routed on its `Type`:
headers are not signed and moto sends none. Every message is verified before anything else
(`SnsVerifier`: signature, pinned certificate URL, allow-listed topic, freshness). Then:

  Notification              → alerts_from_notification → recorded → 200
  SubscriptionConfirmation  → confirmed (ConfirmSubscription or SubscribeURL) → recorded → 200
  UnsubscribeConfirmation   → recorded as a firing `SnsUnsubscribed` alert, logged, counted → 200

Refused (never recorded): malformed 400; not verified 403 (SNS does not retry 4xx, which is
what we want for forgeries); a confirmation that can never succeed 403 (a SubscribeURL not in the
pinned form, or AWS refusing the token, the topic or our role). Asked again (503, SNS retries
5xx) only when a retry can succeed: the certificate could not be fetched, the confirming call
timed out or AWS failed, the store cannot write. A delivery already recorded is
answered 200 and not processed again. Token, SubscribeURL and UnsubscribeURL are never logged.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Final

import aiohttp
import orjson
from aiohttp import web

from remediator.aws.clients import AWS_EXTRA, AwsClients
from remediator.clock import Clock
from remediator.errors import BadRequest
from remediator.model import Alert
from remediator.observability import get_logger
from remediator.settings import AwsSettings, BasicCredential, Settings, SnsRawDelivery, SnsSettings
from remediator.sources.sns.confirm import (
    ApiConfirmer,
    ConfirmationFailed,
    SubscribeUrlConfirmer,
    SubscriptionConfirmer,
)
from remediator.sources.sns.delivery import raw_message_id, subscription_alert
from remediator.sources.sns.envelope import MESSAGE_TYPES, NOTIFICATION, SUBSCRIPTION_CONFIRMATION, parse_sns_timestamp
from remediator.sources.sns.messages import SOURCE, alerts_from_notification, delivery_key
from remediator.sources.sns.verify import (
    HttpsCertificateFetcher,
    SnsEnvelope,
    SnsVerificationError,
    SnsVerifier,
    TrustPolicy,
    VerifyResult,
    parse_envelope,
)
from remediator.web.bodies import read_body
from remediator.web.common import (
    BEARER_CHALLENGE,
    basic_credentials,
    basic_matches,
    bearer_token,
    constant_time_in,
    json_response,
)
from remediator.web.keys import DEPS
from remediator.web.webhooks import accept, accept_new, reject

log = get_logger("remediator.web.sns")

BASIC_CHALLENGE: Final = 'Basic realm="remediator-sns"'  # SNS sends credentials only once challenged
TYPE_LABELS: Final = {
    "Notification": "notification",
    "SubscriptionConfirmation": "subscription_confirmation",
    "UnsubscribeConfirmation": "unsubscribe_confirmation",
}

BODY_REFUSALS: Final = {413: "too_large", 415: "unsupported_encoding"}  # else: malformed (a truncated body)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SnsIntake:
    """The verifier and the confirmer of the SNS handlers, opened and closed with the app.

    ConfirmSubscription uses the AWS clients the app already has (the core's, for its actions);
    an intake process has none, and opens its own.
    """

    # Failures (of any kind) of a certificate URL are remembered this long: shorter than SNS's
    # default 20 s between retries, so a retry after a failed fetch really fetches again.
    CERTIFICATE_FAILURE_TTL: Final = timedelta(seconds=15)
    CONFIRMED_REMEMBERED: Final = 1024

    def __init__(self, settings: SnsSettings, aws_settings: AwsSettings, clock: Clock) -> None:
        self.settings = settings
        self._aws_settings = aws_settings
        self._clock = clock
        self._http: aiohttp.ClientSession | None = None
        self._own_aws: AwsClients | None = None
        self._verifier: SnsVerifier | None = None
        self._confirmer: SubscriptionConfirmer | None = None
        self._confirmed: OrderedDict[str, None] = OrderedDict()

    def was_confirmed(self, delivery: str) -> bool:
        """Whether this process confirmed that delivery already (SNS re-sends a confirmation whose
        answer it did not get). Memory only: elsewhere or after a restart it is confirmed again,
        which AWS treats as a no-op."""
        return delivery in self._confirmed

    def confirmed(self, delivery: str) -> None:
        self._confirmed[delivery] = None
        if len(self._confirmed) > self.CONFIRMED_REMEMBERED:
            self._confirmed.popitem(last=False)

    async def open(self, shared_aws: AwsClients | None) -> None:
        settings = self.settings
        # A session of its own: no cookies, nothing shared with what actions call.
        http = self._http = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        fetcher = HttpsCertificateFetcher(http, timeout=settings.certificate_timeout.total_seconds(),
                                          mirror_base_url=settings.mirror_url)
        self._verifier = SnsVerifier(
            fetcher=fetcher, trust=TrustPolicy.from_files(settings.ca_files), allowed_topics=settings.allowed_topics,
            clock=self._clock.now, max_age=settings.max_age, failure_ttl=self.CERTIFICATE_FAILURE_TTL,
        )
        timeout = settings.confirm_timeout.total_seconds()
        if settings.confirm_method == "SubscribeURL":
            self._confirmer = SubscribeUrlConfirmer(http, timeout=timeout, mirror_base_url=settings.mirror_url)
            return
        if shared_aws is None:
            shared_aws = self._own_aws = AwsClients(self._aws_settings)
            await shared_aws.open()
        self._confirmer = ApiConfirmer(shared_aws, timeout=timeout)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
        if self._own_aws is not None:
            await self._own_aws.close()
        self._http = self._own_aws = self._verifier = self._confirmer = None

    @property
    def verifier(self) -> SnsVerifier:
        if self._verifier is None:
            raise RuntimeError("SnsIntake is not open: add_sns_routes opens it with the app")
        return self._verifier

    @property
    def confirmer(self) -> SubscriptionConfirmer:
        if self._confirmer is None:
            raise RuntimeError("SnsIntake is not open: add_sns_routes opens it with the app")
        return self._confirmer


SNS_INTAKE = web.AppKey("sns_intake", SnsIntake)


def add_sns_routes(app: web.Application, settings: Settings) -> None:
    """`sns.path` and the raw-delivery paths, and the SNS intake opened and closed with `app`."""
    app[SNS_INTAKE] = SnsIntake(settings.sns, settings.aws, app[DEPS].clock)
    app.cleanup_ctx.append(_sns_resources)
    app.router.add_post(settings.sns.path, signed)
    for raw in settings.sns.raw_delivery:
        app.router.add_post(raw.path, raw_handler(raw))


async def _sns_resources(app: web.Application) -> AsyncIterator[None]:
    # In the core this runs after the app's own resources, so the actions' AWS clients exist.
    intake = app[SNS_INTAKE]
    await intake.open(app[DEPS].actions.extras.get(AWS_EXTRA))
    try:
        yield
    finally:
        await intake.close()


def _refuse(request: web.Request, kind: str, result: str, error: BadRequest, *,
            challenge: str = BEARER_CHALLENGE) -> web.Response:
    request.app[DEPS].metrics.sns_deliveries.labels(kind, result).inc()
    return reject(request, SOURCE, error, challenge=challenge)


async def _body(request: web.Request, kind: str) -> bytes | web.Response:
    """The body as sent: a compressed one is refused (415), since only what is inside it could say
    whether inflating it is work done for SNS or for anyone else."""
    try:
        return await read_body(request, request.app[DEPS].settings.max_body_bytes)
    except BadRequest as error:
        return _refuse(request, kind, BODY_REFUSALS.get(error.status, VerifyResult.MALFORMED.value), error)


# -- the signed endpoint --------------------------------------------------------------------------------
async def signed(request: web.Request) -> web.StreamResponse:
    """`POST sns.path`: SNS envelopes only; raw delivery is refused here (it carries no signature)."""
    body = await _body(request, "unknown")
    if isinstance(body, web.Response):
        return body
    if request.headers.get("x-amz-sns-rawdelivery", "").lower() == "true":
        return _refuse(request, "raw", "raw_refused", BadRequest(
            403, "raw_delivery_refused", "raw message delivery carries no signature; give its topic a path of "
            "its own with a shared secret (sns.raw_delivery), or turn RawMessageDelivery off"))
    return await _envelope(request, body)


async def _envelope(request: web.Request, body: bytes, *, path_topic: str | None = None) -> web.StreamResponse:
    intake = request.app[SNS_INTAKE]
    try:
        env = parse_envelope(body)
    except SnsVerificationError as exc:
        return _not_verified(request, "unknown", exc)
    kind = TYPE_LABELS[env.type]
    try:
        if path_topic is not None and env.topic_arn != path_topic:
            raise SnsVerificationError(VerifyResult.UNKNOWN_TOPIC, "TopicArn is not the topic of this path")
        await intake.verifier.verify(env)
    except SnsVerificationError as exc:
        if env.type == SUBSCRIPTION_CONFIRMATION and not exc.retryable:
            request.app[DEPS].metrics.sns_confirmations.labels("refused").inc()
        return _not_verified(request, kind, exc)
    request.app[DEPS].metrics.sns_deliveries.labels(kind, VerifyResult.VERIFIED.value).inc()
    if env.type == NOTIFICATION:
        return await _notification(request, env, intake.settings)
    if env.type == SUBSCRIPTION_CONFIRMATION:
        return await _confirmation(request, env, intake)
    return await _unsubscribed(request, env)


def _not_verified(request: web.Request, kind: str, exc: SnsVerificationError) -> web.Response:
    if not exc.retryable:
        status = 400 if exc.result is VerifyResult.MALFORMED else 403
        return _refuse(request, kind, exc.result.value, BadRequest(status, exc.result.value, exc.message))
    request.app[DEPS].metrics.sns_deliveries.labels(kind, exc.result.value).inc()
    log.warning("sns_retry_requested", type=kind, result=exc.result.value, detail=exc.message)
    return json_response({"error": exc.result.value, "detail": exc.message}, 503)


async def _notification(request: web.Request, env: SnsEnvelope, settings: SnsSettings) -> web.Response:
    alerts = alerts_from_notification(
        env.message, topic_arn=env.topic_arn, message_id=env.message_id, subject=env.subject,
        received_at=request.app[DEPS].clock.now(), insufficient_data=settings.insufficient_data,
    )
    return await accept(request, SOURCE, alerts)


async def _confirmation(request: web.Request, env: SnsEnvelope, intake: SnsIntake) -> web.Response:
    """Confirm (idempotent at AWS), then record; a confirmation this process made is not made again."""
    deps = request.app[DEPS]
    delivery = delivery_key(env.topic_arn, env.message_id)
    if not intake.was_confirmed(delivery):
        try:
            await intake.confirmer.confirm(env)
        except ConfirmationFailed as exc:
            return _not_confirmed(request, env, exc)
        intake.confirmed(delivery)
        deps.metrics.sns_confirmations.labels("confirmed").inc()
        log.info("sns_subscription_confirmed", topic_arn=env.topic_arn, message_id=env.message_id,
                 method=intake.settings.confirm_method)
    record = _subscription_record(request, env, removed=False, how=intake.settings.confirm_method)
    return await accept(request, SOURCE, [record])


def _not_confirmed(request: web.Request, env: SnsEnvelope, exc: ConfirmationFailed) -> web.Response:
    """503 (SNS delivers again) only when a retry can succeed; a refusal for good is a 403."""
    request.app[DEPS].metrics.sns_confirmations.labels("failed" if exc.retryable else "refused").inc()
    log.warning("sns_confirmation_failed", topic_arn=env.topic_arn, message_id=env.message_id, error=exc.error,
                detail=str(exc), retry=exc.retryable)
    return json_response({"error": exc.error, "detail": str(exc)}, 503 if exc.retryable else 403)


async def _unsubscribed(request: web.Request, env: SnsEnvelope) -> web.Response:
    """Never re-subscribe on our own (the SubscribeURL is not followed): tell people instead."""
    response, new = await accept_new(request, SOURCE, [_subscription_record(request, env, removed=True)])
    if new:
        request.app[DEPS].metrics.sns_unsubscriptions.inc()
        log.warning("sns_unsubscribed", topic_arn=env.topic_arn, message_id=env.message_id,
                    detail="this endpoint no longer receives the topic's messages; subscribe it again")
    return response


def _subscription_record(request: web.Request, env: SnsEnvelope, *, removed: bool, how: str = "") -> Alert:
    return subscription_alert(
        topic_arn=env.topic_arn, message_id=env.message_id, published_at=parse_sns_timestamp(env.timestamp),
        received_at=request.app[DEPS].clock.now(), removed=removed, how=how,
    )


# -- raw message delivery --------------------------------------------------------------------------------
def raw_handler(raw: SnsRawDelivery) -> Handler:
    """The handler of one `sns.raw_delivery` path: the shared secret first, then the body.

    SNS still sends the subscription's confirmations to this path as signed envelopes: those are
    verified like on the signed endpoint, for this path's topic only.
    """
    credential = BasicCredential(username=raw.username, password=raw.secret)

    async def handle(request: web.Request) -> web.StreamResponse:
        if not _authenticated(request, credential):
            return _refuse(request, "raw", "unauthorized", BadRequest(
                401, "unauthorized", "raw delivery needs this path's secret (basic auth or bearer)"),
                challenge=BASIC_CHALLENGE)
        body = await _body(request, "raw")
        if isinstance(body, web.Response):
            return body
        if _looks_signed(body):
            return await _envelope(request, body, path_topic=raw.topic_arn)
        return await _raw_message(request, raw, body)

    return handle


def _authenticated(request: web.Request, credential: BasicCredential) -> bool:
    token = bearer_token(request)
    if token is not None:
        return constant_time_in(token, [credential.password.get_secret_value()])
    basic = basic_credentials(request)
    return basic is not None and basic_matches(basic, [credential])


def _looks_signed(body: bytes) -> bool:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(document, dict) and document.get("Type") in MESSAGE_TYPES and "Signature" in document


async def _raw_message(request: web.Request, raw: SnsRawDelivery, body: bytes) -> web.StreamResponse:
    claimed_topic = request.headers.get("x-amz-sns-topic-arn")
    if claimed_topic is not None and claimed_topic != raw.topic_arn:
        return _refuse(request, "raw", VerifyResult.UNKNOWN_TOPIC.value, BadRequest(
            403, VerifyResult.UNKNOWN_TOPIC.value, "x-amz-sns-topic-arn is not the topic of this path"))
    try:
        message = body.decode("utf-8")
    except UnicodeDecodeError:
        return _refuse(request, "raw", VerifyResult.MALFORMED.value, BadRequest(
            400, VerifyResult.MALFORMED.value, "an SNS message is UTF-8 text"))
    deps, settings = request.app[DEPS], request.app[SNS_INTAKE].settings
    deps.metrics.sns_deliveries.labels("raw", "authenticated").inc()
    message_id = raw_message_id(request.headers.get("x-amz-sns-message-id"), body)
    alerts = alerts_from_notification(message, topic_arn=raw.topic_arn, message_id=message_id, subject=None,
                                      received_at=deps.clock.now(), insufficient_data=settings.insufficient_data)
    return await accept(request, SOURCE, alerts)
