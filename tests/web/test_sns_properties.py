"""Whatever is POSTed to the SNS endpoint, the answer is a 4xx with a JSON error and nothing is recorded.

One daemon serves every example of a test (so "nothing recorded" accumulates across them). Its
certificate mirror always answers, so no 503 is legitimate here: every 5xx would be a crash.
"""

from __future__ import annotations

import json
import weakref
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from remediator.sources.sns.envelope import signed_field_names
from tests.support.daemon import Daemon
from tests.support.sns import SnsDaemonFactory, nothing_recorded, signed

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
# What decides whether a message is genuine: the signed fields of its type, and the signature's own.
SIGNATURE_FIELDS = ("SignatureVersion", "Signature", "SigningCertURL")
TYPES_AND_FIELDS = [(t, f) for t in MESSAGE_TYPES for f in (*signed_field_names(t), *SIGNATURE_FIELDS)]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
content_types = st.sampled_from(["text/plain; charset=UTF-8", "application/json", "application/xml", "",
                                 "multipart/form-data; boundary=x", "application/x-www-form-urlencoded"])


async def answered_4xx_with_json(daemon: Daemon, payload: bytes, headers: dict[str, str]) -> None:
    response = await daemon.client.post("/webhooks/sns", data=payload, headers=headers)
    answer = await response.json(content_type=None)
    assert 400 <= response.status < 500, (response.status, answer)
    assert response.content_type == "application/json"
    assert isinstance(answer["error"], str) and isinstance(answer["detail"], str)
    assert nothing_recorded(daemon)


@PROPERTY
@given(payload=st.binary(max_size=4096), content_type=content_types, raw=st.booleans())
async def test_any_bytes(start_sns_daemon: SnsDaemonFactory, payload: bytes, content_type: str, raw: bool) -> None:
    daemon = await _daemon(start_sns_daemon)
    headers = {"Content-Type": content_type, **({"x-amz-sns-rawdelivery": "true"} if raw else {})}
    await answered_4xx_with_json(daemon, payload, headers)


@PROPERTY
@given(value=json_values | st.dictionaries(st.sampled_from([f for _, f in TYPES_AND_FIELDS]), json_values))
async def test_any_json(start_sns_daemon: SnsDaemonFactory, value: Any) -> None:
    daemon = await _daemon(start_sns_daemon)
    await answered_4xx_with_json(daemon, json.dumps(value).encode(), {})


@PROPERTY
@given(type_and_field=st.sampled_from(TYPES_AND_FIELDS), replacement=st.none() | json_values)
async def test_any_change_to_a_signed_message(start_sns_daemon: SnsDaemonFactory, type_and_field: tuple[str, str],
                                              replacement: Any) -> None:
    """A genuine message (allow-listed topic, fresh, trusted certificate) with one field that counts changed.

    (Fields a type does not sign, like a Subject on a confirmation, are ignored: changing them
    leaves a genuine message, rightly accepted.)
    """
    daemon = await _daemon(start_sns_daemon)
    message_type, field = type_and_field
    fields = json.loads(signed(message_type))
    assume(fields.get(field) != replacement)
    if replacement is None:
        fields.pop(field, None)
    else:
        fields[field] = replacement
    # A Notification without Subject is genuine: dropping an absent Subject changes nothing.
    assume(fields != json.loads(signed(message_type)))
    await answered_4xx_with_json(daemon, json.dumps(fields).encode(), {})


_started: weakref.WeakKeyDictionary[SnsDaemonFactory, Daemon] = weakref.WeakKeyDictionary()


async def _daemon(start: SnsDaemonFactory) -> Daemon:
    """The daemon of this test (one factory per test): started at the first example, reused by the others."""
    daemon = _started.get(start)
    if daemon is None:
        daemon = _started[start] = await start()
    return daemon
