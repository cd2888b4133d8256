"""Metrics: bounded label sets start from zero, so rate() and increase() see the first events."""

from __future__ import annotations

from remediator.observability import REJECTION_REASONS, SOURCES, Metrics
from remediator.web.webhooks import REJECTION_RESULT


def test_webhook_refusals_start_from_zero_so_alert_rules_see_the_first_ones() -> None:
    assert set(REJECTION_RESULT.values()) <= set(REJECTION_REASONS)
    registry = Metrics().registry
    for source in SOURCES:
        for reason in REJECTION_REASONS:
            labels = {"source": source, "reason": reason}
            assert registry.get_sample_value("remediator_webhook_rejected_total", labels) == 0.0
