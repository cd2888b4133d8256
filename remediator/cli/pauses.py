"""`remediator pauses list|add|end`: scoped pauses (the kill switch for one policy, action type or
target), through the running daemon's API. Adding and ending one needs an admin token."""

from __future__ import annotations

import argparse
from typing import Any

from remediator.cli.approvals import add_daemon_parser, daemon_command
from remediator.plaintext import one_line

SCOPES = ("policy", "action", "target")


def describe(pause: dict[str, Any]) -> str:
    until = pause["until"] or "ended by someone"
    return one_line(f"{pause['scope']} {pause['match']}: paused by {pause['by']} at {pause['at']} until {until}: "
                    f"{pause['reason']}")


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any]]:
    if args.action == "list":
        return "GET", "/api/v1/pauses", {}
    if args.action == "end":
        return "POST", "/api/v1/pauses/end", {"scope": args.scope, "match": args.match}
    body = {"scope": args.scope, "match": args.match, "reason": args.reason}
    body.update({k: v for k, v in (("for", args.duration), ("until", args.until)) if v})
    return "POST", "/api/v1/pauses", body


def _text(args: argparse.Namespace, answer: dict[str, Any]) -> str:
    if args.action == "list":
        return "\n".join(describe(p) for p in answer["pauses"]) or "nothing is paused"
    if args.action == "end":
        return one_line(f"ended: {answer['scope']} {answer['match']} (by {answer['by']})")
    return describe(answer)


def cmd_pauses(args: argparse.Namespace) -> int:
    method, path, body = _request(args)
    return daemon_command(args, method, path, body or None, lambda answer: _text(args, answer))


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    pauses, action = add_daemon_parser(sub, "pauses", "pause one policy, action type or target (the kill switch, "
                                       "scoped; through the daemon)", parents, "list,add,end")
    action.add_parser("list", parents=parents, help="the pauses in force")
    add = action.add_parser("add", parents=parents, help="pause what SCOPE MATCH names (admin)")
    end = action.add_parser("end", parents=parents, help="end a pause (admin)")
    for command in (add, end):
        command.add_argument("scope", choices=SCOPES, help="what MATCH is matched against")
        command.add_argument("match", help="a glob: pg-*, ecs.*, erp-prod-db")
    add.add_argument("--reason", required=True, help="why (recorded with your name)")
    until = add.add_mutually_exclusive_group()
    until.add_argument("--for", dest="duration", help="how long: 30m, 2h (default: until ended)")
    until.add_argument("--until", help="until when: an RFC 3339 time with an offset")
    pauses.set_defaults(func=cmd_pauses)
