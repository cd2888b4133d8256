"""`remediator circuits list|close`: the circuit breaker's circuits, through the running daemon's
API (the state is in its coordination backend). Closing one needs an admin token."""

from __future__ import annotations

import argparse
from typing import Any

from remediator.cli.approvals import add_daemon_parser, daemon_command
from remediator.plaintext import one_line


def describe(circuit: dict[str, Any]) -> str:
    when = {"open": f" until {circuit['closes_at']}", "half_open": " (one more try allowed)", "closed": ""}
    return one_line(f"{circuit['action']} on {circuit['target']}: {circuit['state']}{when[circuit['state']]}, "
                    f"{circuit['failures']} failures in a row (last: {circuit['reason']} at "
                    f"{circuit['last_failure_at']})")


def listing(found: dict[str, Any]) -> str:
    if not found["circuits"]:
        return "no failures counted" if found["threshold"] else "the circuit breaker is off (failures: 0)"
    return "\n".join(describe(c) for c in found["circuits"])


def cmd_circuits(args: argparse.Namespace) -> int:
    if args.action == "list":
        return daemon_command(args, "GET", "/api/v1/circuits", None, listing)
    return daemon_command(args, "POST", "/api/v1/circuits/close",
                          {"action": args.action_type, "target": args.target, "reason": args.reason},
                          lambda a: one_line(f"closed: {a['action']} on {a['target']} by {a['by']}"))


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    circuits, action = add_daemon_parser(sub, "circuits", "the circuit breaker: failures in a row per action type "
                                         "and target (through the daemon)", parents, "list,close")
    action.add_parser("list", parents=parents, help="every circuit with failures counted: closed, open, half_open")
    close = action.add_parser("close", parents=parents,
                              help="close a circuit: the action type is tried on the target again (admin)")
    close.add_argument("action_type", metavar="ACTION", help="the action type, e.g. ecs.force_redeploy")
    close.add_argument("target", help="the target, as `circuits list` shows it")
    close.add_argument("--reason", required=True, help="why (logged with your name)")
    circuits.set_defaults(func=cmd_circuits)
