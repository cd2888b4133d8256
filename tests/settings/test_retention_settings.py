"""The retention section: what is refused at start, with its key."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediator.errors import SettingsError
from remediator.settings import load_settings


@pytest.mark.parametrize(("environ", "problem"), [
    ({"REMEDIATOR_RETENTION__ALERTS": "3d"}, "retention: Value error, alerts: at least 7d"),
    ({"REMEDIATOR_RETENTION__AUDIT": "30d"}, "audit: keep audit records at least as long as incidents"),
    ({"REMEDIATOR_RETENTION__ARCHIVE__BUCKET": "b"}, "kms_key_id is required with a bucket"),
    ({"REMEDIATOR_RETENTION__ARCHIVE__BUCKET": "b", "REMEDIATOR_RETENTION__ARCHIVE__KMS_KEY_ID": "k",
      "REMEDIATOR_RETENTION__ARCHIVE__KINDS": "[alerts, raw]"}, "kinds: unknown ['raw']"),
    ({"REMEDIATOR_RETENTION__BATCH_SIZE": "0"}, "retention.batch_size"),
])
def test_unsafe_retention_is_refused_with_its_key(environ: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ=environ)
    problems = refused.value.problems
    assert any(problem.rsplit(": Value error, ", maxsplit=1)[-1] in p for p in problems), problems


def test_audit_may_be_shorter_than_incidents_when_it_is_archived() -> None:
    settings = load_settings(environ={
        "REMEDIATOR_RETENTION__AUDIT": "30d", "REMEDIATOR_RETENTION__ARCHIVE__BUCKET": "erp-archive",
        "REMEDIATOR_RETENTION__ARCHIVE__KMS_KEY_ID": "alias/remediator-archive"})
    assert settings.retention.keep("audit") == timedelta(days=30)
    assert settings.retention.archive.enabled


def test_the_defaults_keep_alerts_a_month_incidents_400_days_and_audit_longest() -> None:
    retention = load_settings(environ={}).retention
    assert (retention.alerts, retention.incidents) == (timedelta(days=30), timedelta(days=400))
    assert retention.audit > retention.incidents and retention.enabled and not retention.archive.enabled
