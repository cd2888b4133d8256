"""One-item spellings of the store's batch calls, for tests that deal with one request or alert.

The store contract holds only what remediator calls: the batched `claim_requests`,
`correlate_many` and `finish_requests`. These helpers go through those very methods, so a test
written one item at a time still checks what the daemon runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from remediator.model import ActionRequest, Alert, AuditRecord, Severity, TimelineEvent
from remediator.stores.base import Correlation, IncidentStore, Observation, RequestStore


async def claim_request(store: RequestStore, request: ActionRequest, now: datetime) -> bool:
    """Whether this store's holder took the request (False: someone has it already)."""
    (claimed,) = await store.claim_requests([request], now)
    return claimed


async def correlate(store: IncidentStore, alert: Alert, severity: Severity, now: datetime) -> Correlation:
    """What correlating one alert (that matched no policy) did to its incident."""
    (correlation,) = await store.correlate_many([Observation(alert, severity)], now)
    return correlation


async def finish_request(store: RequestStore, record: AuditRecord, events: Sequence[TimelineEvent] = ()) -> None:
    """Write one request's audit record and events, and mark it done."""
    await store.finish_requests([record], events)
