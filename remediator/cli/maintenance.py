"""`remediator maintenance list|add|end`: maintenance windows through the running daemon's API
(those in the settings are listed, and changed in the settings). Adding and ending one needs an
admin token."""

from __future__ import annotations

import argparse
from typing import Any

from remediator.cli.approvals import add_daemon_parser, daemon_command
from remediator.plaintext import one_line


def describe(window: dict[str, Any]) -> str:
    when = f"{window['cron']} for {window['duration']}" if window.get("cron") else \
        f"{window['start']} .. {window['end']}"
    scope = "; ".join(f"{k} {', '.join(window[k])}" for k in ("policies", "actions", "targets") if window[k]) \
        or "everything"
    state = f"OPEN until {window['open_until']}" if window["open_until"] else "closed"
    source = f"set by {window['by']}" if window["source"] == "api" else "from settings"
    return one_line(f"{window['name']}: {state}; {when}; {scope}; {source}: {window['reason']}")


def _window(args: argparse.Namespace) -> dict[str, Any]:
    window = {"name": args.name, "reason": args.reason, "policies": args.policy, "actions": args.action_type,
              "targets": args.target}
    window.update({k: v for k, v in (("start", args.start), ("end", args.end), ("cron", args.cron),
                                     ("duration", args.duration)) if v})
    return window


def cmd_maintenance(args: argparse.Namespace) -> int:
    if args.action == "list":
        return daemon_command(args, "GET", "/api/v1/maintenance", None,
                              lambda a: "\n".join(describe(w) for w in a["windows"]) or "no maintenance windows")
    if args.action == "end":
        return daemon_command(args, "POST", "/api/v1/maintenance/end", {"name": args.name},
                              lambda a: one_line(f"ended: {a['name']} (by {a['by']})"))
    return daemon_command(args, "POST", "/api/v1/maintenance", _window(args), describe)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    maintenance, action = add_daemon_parser(sub, "maintenance", "maintenance windows: the requests they cover are "
                                            "denied while they are open (through the daemon)", parents,
                                            "list,add,end")
    action.add_parser("list", parents=parents, help="every window, from the settings and set at run time")
    add = action.add_parser("add", parents=parents,
                            help="a one-off (--start, --end) or recurring (--cron, --duration) window (admin)")
    add.add_argument("name")
    add.add_argument("--reason", required=True, help="why (recorded with your name)")
    add.add_argument("--start", help="one-off: when it opens (without an offset, in guardrails.time_zone)")
    add.add_argument("--end", help="one-off: when it closes")
    add.add_argument("--cron", help='recurring: when each window opens, "minute hour day month weekday"')
    add.add_argument("--duration", help="recurring: how long each lasts (2h)")
    add.add_argument("--policy", action="append", default=[], help="a policy glob it covers (repeatable)")
    add.add_argument("--action", dest="action_type", action="append", default=[],
                     help="an action type glob it covers (repeatable)")
    add.add_argument("--target", action="append", default=[], help="a target glob it covers (repeatable)")
    end = action.add_parser("end", parents=parents, help="end a window set at run time (admin)")
    end.add_argument("name")
    maintenance.set_defaults(func=cmd_maintenance)
