"""The test build of the daemon: `python -m tests.support.crashpoints --config FILE serve`.

It is `remediator` with one deterministic crash point, chosen by the environment variable
`CRASH_AT` (read here only; the production command knows nothing of it): the process ends with
`os._exit` — no `finally`, no cleanup, like kill -9 — the first time a request whose `text`
parameter is `CRASH_TEXT` (a notify.webhook request for one occurrence) reaches that point of its
life; every other request goes its way (so the next crashing process recovers the last one's):

    before-claim   decided ALLOW, its claim not yet written
    after-claim    its claim committed, nothing else done
    precheck       inside the precheck (the claim held, nothing ran)
    run            the request marked running, the action not yet called
    before-audit   the action returned, its audit record not yet written
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from remediator.engine.executor import Executor
from remediator.model import ActionRequest
from remediator.stores.postgres.store import PostgresStore
from remediator.stores.sqlite.store import SqliteStore

POINTS = ("before-claim", "after-claim", "precheck", "run", "before-audit")
CRASHED = 137  # what a shell reports for a process killed by SIGKILL


def _crash(point: str) -> None:
    sys.stderr.write(f'{{"event": "test_crash_point", "point": "{point}"}}\n')
    sys.stderr.flush()
    os._exit(CRASHED)


def install(point: str, text: str) -> None:
    """Wrap the one place of the request's life named by `point`."""
    if point not in POINTS:
        raise SystemExit(f"CRASH_AT must be one of {', '.join(POINTS)}, not {point!r}")

    def ours(request: ActionRequest) -> bool:
        return request.params.get("text") == text

    def items(args: tuple[Any, ...]) -> bool:  # (executor, [Pending, ...])
        return any(ours(i.planned.request) for i in args[1])

    def context(args: tuple[Any, ...]) -> bool:  # (..., action, params, ctx)
        return ours(args[-1].request)

    if point == "before-claim":
        _wrap(Executor, "_act", items, point)
    elif point == "after-claim":
        def won(args: tuple[Any, ...], result: Any) -> bool:  # (store, requests, now) -> [won, ...]
            return any(ours(r) and ok for r, ok in zip(args[1], result, strict=True))

        for store in (SqliteStore, PostgresStore):
            _wrap(store, "claim_requests", None, point, after=won)
    elif point == "precheck":
        _wrap(Executor, "_precheck", context, point, static=True)
    elif point == "run":
        _wrap(Executor, "run", context, point)
    else:
        _wrap(Executor, "_finish", items, point)


def _wrap(owner: type, name: str, before: Callable[[tuple[Any, ...]], bool] | None, point: str, *,
          after: Callable[[tuple[Any, ...], Any], bool] | None = None, static: bool = False) -> None:
    original = getattr(owner, name)

    async def wrapper(*args: Any) -> Any:
        if before is not None and before(args):
            _crash(point)
        result = await original(*args)
        if after is not None and after(args, result):
            _crash(point)
        return result

    setattr(owner, name, staticmethod(wrapper) if static else wrapper)


def main() -> int:
    point = os.environ.get("CRASH_AT", "")
    if point:
        install(point, os.environ["CRASH_TEXT"])
    from remediator.cli.commands import main as remediator  # noqa: PLC0415 - after the crash point is in place

    return remediator()


if __name__ == "__main__":
    raise SystemExit(main())
