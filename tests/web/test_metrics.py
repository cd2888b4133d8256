"""`/metrics` on the admin listener, scraped as Prometheus scrapes it: prometheus_client's own
exposition (text or OpenMetrics by the Accept header, gzip when asked, `name[]` filters), the
process's own metrics, no `_created` series, and the store-derived gauges read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import corpus_file
from tests.support.daemon import DaemonFactory

BEARER = {"Authorization": "Bearer am-secret"}
PAYLOAD = corpus_file("am-v0.25-firing-2-alerts.json").read_bytes()
# prometheus_client leaves the OpenMetrics parser unannotated; its type is this.
openmetrics_families: Callable[[str], Iterable[Metric]] = openmetrics_parser.text_string_to_metric_families
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def test_prometheus_text_with_process_metrics_and_without_created_series(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    response = await daemon.admin.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await response.text()
    found = samples(text)
    names = {name for name, _ in found}
    assert {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds"} <= names
    assert "python_info" in names
    assert not [n for n in names if n.endswith("_created")], "_created series are off"
    assert found[("remediator_decisions_total", (("reason", "cooldown"), ("verdict", "deny")))] == 0


async def test_gzip_and_openmetrics_are_negotiated(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    zipped = await daemon.admin.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"  # the client undoes it below
    assert "remediator_open_incidents" in await zipped.text()
    plain = await daemon.admin.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    negotiated = await daemon.admin.get("/metrics", headers={"Accept": OPENMETRICS})
    assert negotiated.headers["Content-Type"].startswith("application/openmetrics-text")
    body = await negotiated.text()
    assert body.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(body)}
    assert families["remediator_alerts_received"].type == "counter"
    assert not [s for f in families.values() for s in f.samples if s.name.endswith("_created")]


async def test_one_family_by_name(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    response = await daemon.admin.get("/metrics", params=[("name[]", "remediator_backlog")])
    assert {name for name, _ in samples(await response.text())} == {"remediator_backlog"}


async def test_store_gauges_are_read_at_scrape_time(start_daemon: DaemonFactory) -> None:
    daemon = await start_daemon()
    before = samples(await (await daemon.admin.get("/metrics")).text())
    assert [before[("remediator_open_incidents", (("severity", s),))] for s in ("P1", "P2", "P3", "P4")] == [0] * 4
    assert before[("remediator_approvals_pending", ())] == 0
    response = await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=BEARER)
    assert response.status == 200
    await daemon.engine.drain()
    [incident] = await daemon.deps.store.list_incidents()
    after = samples(await (await daemon.admin.get("/metrics")).text())
    by_severity = {s: after[("remediator_open_incidents", (("severity", s),))] for s in ("P1", "P2", "P3", "P4")}
    assert by_severity == {s: (1 if s == incident.severity.value else 0) for s in by_severity}
    assert after[("remediator_backlog", ())] == await daemon.deps.store.count_unprocessed() == 0
