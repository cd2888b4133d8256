"""Alertmanager webhook bodies (payload version 4) for tests that go through the real intake."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import orjson


def webhook_body(
    name: str, labels: Mapping[str, str], *, status: str = "firing", fingerprint: str, starts_at: datetime,
    summary: str = "", group: str = "",
) -> bytes:
    alert = {
        "status": status, "labels": {"alertname": name, **labels}, "annotations": {"summary": summary or name},
        "startsAt": starts_at.isoformat().replace("+00:00", "Z"), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example/graph", "fingerprint": fingerprint,
    }
    return orjson.dumps({
        "version": "4", "status": status, "receiver": "remediator", "groupKey": group or f'{{}}:{{alertname="{name}"}}',
        "groupLabels": {"alertname": name}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager.example", "alerts": [alert],
    })
