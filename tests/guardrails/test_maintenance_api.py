"""Maintenance windows set at run time: `/api/v1/maintenance` and `remediator maintenance`; the
guardrails obey them beside the ones in the settings."""

from __future__ import annotations

import orjson

from remediator.guardrails.maintenance import KIND
from tests.guardrails.test_circuits_api import ADMIN, TOKENS, VIEWER, bearer
from tests.guardrails.test_pause import AM, PAYLOAD, deny_reasons, remediator
from tests.support.daemon import Daemon, DaemonFactory

SETTINGS_WINDOW = {"name": "sunday-patching", "reason": "RDS patches", "cron": "0 2 * * 0", "duration": "2h"}
MIGRATION = {"name": "db-migration", "reason": "schema change OPS-42", "start": "2026-01-05T08:30:00",
             "end": "2026-01-05T10:00:00", "policies": ["pg-*"]}


async def windows(daemon: Daemon) -> list[dict[str, object]]:
    answer = await daemon.admin.get("/api/v1/maintenance", headers=bearer(VIEWER))
    assert answer.status == 200
    found: list[dict[str, object]] = (await answer.json())["windows"]
    return found


async def test_a_window_set_through_the_api_denies_what_it_covers(start_daemon: DaemonFactory) -> None:
    daemon: Daemon = await start_daemon(api={"tokens": TOKENS}, guardrails={"maintenance": [SETTINGS_WINDOW]})
    refused = [
        await daemon.admin.post("/api/v1/maintenance", json=MIGRATION, headers=bearer(VIEWER)),
        await daemon.admin.post("/api/v1/maintenance", json={**MIGRATION, "end": "2026-01-05T08:00:00"},
                                headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/maintenance", json={**MIGRATION, "cron": "0 2 * * *"},
                                headers=bearer(ADMIN)),
        await daemon.admin.post("/api/v1/maintenance", json={**MIGRATION, "name": "sunday-patching"},
                                headers=bearer(ADMIN)),
    ]
    assert [r.status for r in refused] == [403, 400, 400, 409]
    assert await daemon.deps.coordination.controls(KIND) == {}  # nothing was scheduled
    added = await daemon.admin.post("/api/v1/maintenance", json=MIGRATION, headers=bearer(ADMIN))
    assert added.status == 201 and (await added.json())["open_until"] == "2026-01-05T10:00:00+00:00"
    assert [(w["name"], w["source"], w["by"]) for w in await windows(daemon)] == [
        ("sunday-patching", "settings", ""), ("db-migration", "api", "root")]

    assert (await daemon.client.post("/webhooks/alertmanager", data=PAYLOAD, headers=AM)).status == 200
    await daemon.engine.drain()
    assert daemon.count("alerts") == 2 and await deny_reasons(daemon) == {"maintenance_window"}

    settings_one = await daemon.admin.post("/api/v1/maintenance/end", json={"name": "sunday-patching"},
                                           headers=bearer(ADMIN))
    assert settings_one.status == 409  # changed in the settings, not here
    ended = await daemon.admin.post("/api/v1/maintenance/end", json={"name": "db-migration"}, headers=bearer(ADMIN))
    assert ended.status == 200 and [w["name"] for w in await windows(daemon)] == ["sunday-patching"]


async def test_the_command_schedules_lists_and_ends(start_daemon: DaemonFactory) -> None:
    daemon: Daemon = await start_daemon(api={"tokens": TOKENS})
    url = str(daemon.admin.make_url("")).rstrip("/")
    admin, viewer = ("--url", url, "--token", ADMIN), ("--url", url, "--token", VIEWER)
    code, out, err = await remediator("maintenance", *admin, "add", "weekly-db", "--reason", "vacuum",
                                      "--cron", "0 9 * * 1", "--duration", "1h", "--target", "erp-prod-db*",
                                      "--action", "postgres.*")
    assert code == 0, err
    assert out == ("weekly-db: OPEN until 2026-01-05T10:00:00+00:00; 0 9 * * 1 for PT1H; actions postgres.*; "
                   "targets erp-prod-db*; set by root: vacuum\n")
    code, out, _ = await remediator("-o", "json", "maintenance", *viewer, "list")
    assert code == 0 and [w["name"] for w in orjson.loads(out)["windows"]] == ["weekly-db"]
    code, _, err = await remediator("maintenance", *admin, "add", "bad", "--reason", "x", "--cron", "0 9 * *",
                                    "--duration", "1h")
    assert code == 1 and "five fields" in err  # the daemon refused the window: bad input
    code, out, _ = await remediator("maintenance", *admin, "end", "weekly-db")
    assert (code, out) == (0, "ended: weekly-db (by root)\n")
    assert await daemon.deps.coordination.controls(KIND) == {}
