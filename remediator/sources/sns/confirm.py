"""Confirm an SNS subscription, once its SubscriptionConfirmation has been verified (docs/wire-formats.md §1.2).

Two ways, chosen by `sns.confirm_method`:

- `ConfirmSubscription` (default): the API call with the message's TopicArn and Token, in the
  TopicArn's region, through the daemon's one aiobotocore session, with
  `AuthenticateOnUnsubscribe`: otherwise the SubscriptionArn, which every notification's
  UnsubscribeURL carries, lets anyone who sees one unsubscribe us without credentials;
- `SubscribeURL`: a GET of the message's SubscribeURL, only if it is exactly
  `https://sns.<TopicArn region>.amazonaws.com[.cn]/?Action=ConfirmSubscription&TopicArn=<the
  TopicArn>&Token=<the Token>`; no redirects, verified TLS, a short timeout, a small answer.

Both are idempotent at AWS: confirming with a token already used returns the same subscription,
which is what makes SNS's retries of a confirmation harmless. The Token, the SubscribeURL (which
contains it) and the SubscriptionArn are capabilities: nothing here returns, logs or quotes them.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Final, Protocol
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from yarl import URL

from remediator.aws.clients import AwsCallError, AwsCalls, AwsClients
from remediator.sources.sns.certs import moto_authorization
from remediator.sources.sns.envelope import SnsEnvelope, TopicArn, parse_topic_arn

CONFIRM_PERMISSIONS: Final = ("sns:ConfirmSubscription",)
"""What the daemon's role needs for the default confirm_method (the task role's policy adds it)."""


class ConfirmationFailed(Exception):
    """The subscription could not be confirmed; `str(self)` is safe to log (no Token, no URL).

    `retryable`: a later delivery of the same confirmation may succeed (no answer in time, AWS
    failed or throttled). Otherwise the refusal is for good, `error` says why, and SNS must not
    be asked to deliver it again.
    """

    def __init__(self, message: str, *, retryable: bool = True, error: str = "confirmation_failed") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.error = error


def _refused(message: str, error: str = "confirmation_refused") -> ConfirmationFailed:
    return ConfirmationFailed(message, retryable=False, error=error)


def _unpinned(message: str) -> ConfirmationFailed:
    return _refused(message, "subscribe_url_refused")


# Answers to a SubscribeURL GET after which the same request may succeed later.
PASSING_STATUSES: Final = frozenset({408, 429})


class SubscriptionConfirmer(Protocol):
    """Confirms the subscription of a verified SubscriptionConfirmation."""

    async def confirm(self, env: SnsEnvelope) -> None:
        """Confirm, or raise ConfirmationFailed."""
        ...


def _topic_and_token(env: SnsEnvelope) -> tuple[TopicArn, str]:
    if env.token is None or env.subscribe_url is None:
        raise _refused("the message is not a SubscriptionConfirmation")
    try:
        return parse_topic_arn(env.topic_arn), env.token
    except ValueError as exc:
        raise _refused(str(exc)) from None


class ApiConfirmer:
    """`ConfirmSubscription(TopicArn, Token)` in the topic's region; botocore's retries, our deadline."""

    def __init__(self, clients: AwsClients, *, timeout: float) -> None:
        self._clients = clients
        self._timeout = timeout

    async def confirm(self, env: SnsEnvelope) -> None:
        topic, token = _topic_and_token(env)
        calls = AwsCalls(self._clients)
        args = {"TopicArn": env.topic_arn, "Token": token, "AuthenticateOnUnsubscribe": "true"}
        try:
            async with asyncio.timeout(self._timeout):
                await calls.call("sns", "ConfirmSubscription", args, region=topic.region)
        except TimeoutError:
            raise ConfirmationFailed(f"ConfirmSubscription: no answer within {self._timeout:g} s") from None
        except AwsCallError as exc:
            # AWS quotes parameters in some messages; the Token must not reach a log through one.
            # Throttling and AWS's own failures pass; an invalid token, a topic gone, a role not
            # allowed to confirm do not, whatever SNS delivers again.
            message = str(exc).replace(token, "<token>")
            raise (ConfirmationFailed(message) if exc.failure.retryable else _refused(message)) from None


def validate_subscribe_url(env: SnsEnvelope) -> None:
    """Raise ConfirmationFailed (for good: `subscribe_url_refused`) unless SubscribeURL confirms
    exactly this topic with exactly this token."""
    topic, token = _topic_and_token(env)
    assert env.subscribe_url is not None  # checked by _topic_and_token
    parts = urlsplit(env.subscribe_url)
    # netloc, not hostname: userinfo or a port would make them differ.
    if parts.scheme != "https" or parts.netloc != topic.sns_host or parts.path != "/" or parts.fragment:
        raise _unpinned(f"SubscribeURL must be https://{topic.sns_host}/?Action=ConfirmSubscription&...")
    try:
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True, max_num_fields=3)
    except ValueError:
        raise _unpinned("SubscribeURL has an unreadable query") from None
    expected = {"Action": "ConfirmSubscription", "TopicArn": env.topic_arn, "Token": token}
    if len(query) != len(expected) or dict(query) != expected:
        raise _unpinned("SubscribeURL must carry exactly Action=ConfirmSubscription, the TopicArn "
                        "and the Token of the message")


class SubscribeUrlConfirmer:
    """GET the validated SubscribeURL. `mirror_base_url` (tests) gets the same path and query elsewhere."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout: float, mirror_base_url: str | None = None) -> None:
        self._session = session
        self._timeout = timeout
        self._mirror = mirror_base_url.rstrip("/") if mirror_base_url else None
        self._tls = ssl.create_default_context()  # explicit: the session's connector may not verify

    async def confirm(self, env: SnsEnvelope) -> None:
        validate_subscribe_url(env)
        assert env.subscribe_url is not None
        topic = parse_topic_arn(env.topic_arn)
        url = URL(env.subscribe_url, encoded=True)  # sent as received: it is what was validated
        tls: ssl.SSLContext | bool = self._tls
        headers = {"Accept-Encoding": "identity"}
        if self._mirror is not None:
            url, tls = URL(self._mirror + url.raw_path_qs, encoded=True), True
            headers["Authorization"] = moto_authorization(topic.region)
        try:
            async with asyncio.timeout(self._timeout), self._session.get(
                url, headers=headers, allow_redirects=False, auto_decompress=False, ssl=tls
            ) as response:
                # 200 is AWS's "confirmed"; the body (the SubscriptionArn, in XML) is not needed.
                if response.status != 200:
                    passing = response.status >= 500 or response.status in PASSING_STATUSES
                    message = f"SubscribeURL answered HTTP {response.status}"
                    raise ConfirmationFailed(message) if passing else _refused(message)
        except TimeoutError:
            raise ConfirmationFailed(f"SubscribeURL: no answer within {self._timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise ConfirmationFailed(f"SubscribeURL: {type(exc).__name__}") from None
