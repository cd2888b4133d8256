"""`remediator incidents stats` and `remediator postmortem ID` on a store seeded here."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from remediator.cli.commands import main
from remediator.incidents.lifecycle import Acknowledge, SetRootCause
from remediator.model import Severity
from remediator.stores.sqlite.store import SqliteStore
from tests.conftest import T0
from tests.support import builders
from tests.support.store_calls import correlate


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Settings on a store holding one P1, acknowledged after 5 minutes, recovered after 50."""
    db = tmp_path / "remediator.db"

    async def seed() -> None:
        store = SqliteStore(db, holder="seed")
        await store.open()
        firing = builders.alert("ApiDown", fingerprint="fp", group="g", labels={"service": "erp-api"})
        resolved = builders.alert("ApiDown", fingerprint="fp", group="g", status="resolved")
        await store.record_alerts([firing], T0)
        opened = await correlate(store, firing, Severity.P1, T0)
        assert opened.incident is not None
        await store.apply_incident_command(opened.incident.id, Acknowledge("alice"), T0 + timedelta(minutes=5))
        await store.apply_incident_command(opened.incident.id, SetRootCause("alice", "pool exhausted"), T0)
        await store.record_alerts([resolved], T0)
        await correlate(store, resolved, Severity.P1, T0 + timedelta(minutes=50))
        await store.close()

    asyncio.run(seed())
    path = tmp_path / "settings.yaml"
    path.write_text(f'store: {{url: "sqlite:///{db}"}}\n')
    return path


def test_stats_for_a_terminal(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "incidents", "stats", "--since", "2026-01-01", "--until", "2026-02-01"]) == 0
    out = capsys.readouterr().out
    assert "incidents opened 2026-01-01 .. 2026-02-01: 1" in out
    assert "2026-01   1   0   0   0" in out
    assert "time to recover mean 50 min, max 50 min" in out
    assert "targets missed: respond 0, recover 0" in out
    assert "2026-01  P1            1         1        50.00        50.00" in out  # §10.3's monthly view
    assert "MTTR 2025-11-01 .. 2026-02-01 (minutes): P1 50.00 (1 resolved), P2 - (0 resolved)" in out


def test_stats_as_json_gives_the_same_numbers(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "incidents", "stats", "--since", "2026-01-01", "--until", "2026-02-01",
                 "--json"]) == 0
    stats = orjson.loads(capsys.readouterr().out)
    assert stats["monthly"] == [{"month": "2026-01", "severity": "P1", "incident_count": 1, "resolved_count": 1,
                                 "avg_resolution_minutes": 50.0, "max_resolution_minutes": 50.0}]
    assert stats["mttr"]["by_severity"]["P1"] == {"resolved_count": 1, "mttr_minutes": 50.0}
    assert stats["sla_breaches"]["by_severity"]["P1"] == {"respond": 0, "recover": 0}  # counts, not false


def test_stats_refuses_a_backwards_period(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(config), "incidents", "stats", "--since", "2026-02-01", "--until", "2026-01-01"]) == 2
    assert "since must be before until" in capsys.readouterr().err


def test_postmortem_writes_a_draft_and_never_overwrites_an_edited_one(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    target = tmp_path / "pm.md"
    assert main(["--config", str(config), "postmortem", "INC-2026-00001", "-f", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("# 인시던트 사후분석 보고서") and "INC-2026-00001 (ApiDown on erp-api)" in text
    assert "- **총 소요시간**: 50분" in text and "pool exhausted" in text
    target.write_text("edited by people")
    assert main(["--config", str(config), "postmortem", "INC-2026-00001", "-f", str(target)]) == 1
    assert target.read_text() == "edited by people"  # not replaced without --force
    assert "exists" in capsys.readouterr().err
    assert main(["--config", str(config), "postmortem", "INC-2026-09999", "-f", "-"]) == 1
