"""`remediator approvals list|show|approve|reject`: a client of the running daemon's HTTP API.

Execution happens in the daemon, never here: this process only sends the vote (with the plan
hash it was shown) and prints the answer. The daemon's address comes from `--url` or
`REMEDIATOR_URL`, the token from `--token` or (better: it stays out of the process list)
`REMEDIATOR_TOKEN`. The token is sent as a bearer header and never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import orjson

from remediator.cli import terminal
from remediator.plaintext import one_line

DEFAULT_URL = "http://127.0.0.1:8081"  # the admin listener's default (admin_listen)
VOTED = {"approve": "approved", "reject": "rejected"}
# 1 for what the daemon refused (the request was bad), 2 usage, 3 the daemon cannot be reached.
EXIT_STATUS = {"unreachable": 3, "bad_url": 2, "plan_hash_required": 2}


class ApiError(Exception):
    """The daemon answered with an error, or could not be reached."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.status, self.error, self.detail = status, error, detail


@dataclass(frozen=True, slots=True)
class DaemonApi:
    url: str
    token: str
    timeout: float

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return orjson.loads(self.send(method, path, body))

    def call_text(self, method: str, path: str) -> str:
        return self.send(method, path, None, accept="text/markdown").decode()

    def send(self, method: str, path: str, body: dict[str, Any] | None, accept: str = "application/json") -> bytes:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data, headers["Content-Type"] = orjson.dumps(body), "application/json"
        # The scheme is checked in api_from: http or https only.
        request = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method,  # noqa: S310
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                found: bytes = answer.read()
                return found
        except urllib.error.HTTPError as exc:
            try:
                payload = orjson.loads(exc.read())
            except orjson.JSONDecodeError:
                payload = {}
            raise ApiError(exc.code, str(payload.get("error", exc.reason)), str(payload.get("detail", ""))) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ApiError(0, "unreachable", f"cannot reach the daemon at {self.url}: {reason}") from None


def api_from(args: argparse.Namespace) -> DaemonApi:
    url = args.url or os.environ.get("REMEDIATOR_URL") or DEFAULT_URL
    if urlsplit(url).scheme not in ("http", "https"):
        raise ApiError(0, "bad_url", f"{url!r}: the daemon's URL must start with http:// or https://")
    return DaemonApi(url, args.token or os.environ.get("REMEDIATOR_TOKEN", ""), args.timeout)


def describe(approval: dict[str, Any]) -> str:
    """An approval for a terminal: one line per entry, whatever its values hold."""
    plan = approval["plan"]
    lines = [f"{approval['id']}  {approval['severity']}  {approval['status']:<16} "
             f"{len(approval['approvers'])}/{approval['required']} approvals  expires {approval['expires_at']}",
             f"    {plan['action']} on {plan['target']} {orjson.dumps(plan['params']).decode()}",
             f"    {plan['summary']}",
             f"    incident {approval['incident_id']} · requested by {approval['requested_by']} · {approval['reason']}",
             f"    plan hash {plan['hash']}"]
    lines += [f"    {v['by']} {VOTED.get(v['choice'], v['choice'])} at {v['at']}: {v['reason']}"
              for v in approval["votes"]]
    if approval["status"] != "pending":
        lines.append(f"    result: {approval['outcome'] or '-'} {approval['detail']}")
    return "\n".join(one_line(line) for line in lines)


def _confirmed_hash(api: DaemonApi, approval_id: str, choice: str) -> str:
    """Without --plan-hash: show the current plan and ask; the hash sent is the one shown."""
    if not sys.stdin.isatty():
        raise ApiError(0, "plan_hash_required", "give --plan-hash (from `remediator approvals show`)")
    approval = api.call("GET", f"/api/v1/approvals/{quote(approval_id)}")
    terminal.out(describe(approval))
    if input(f"{choice.capitalize()} this plan? Type yes: ").strip().lower() != "yes":
        raise ApiError(0, "cancelled", "nothing was sent")
    return str(approval["plan"]["hash"])


def cmd_approvals(args: argparse.Namespace) -> int:
    try:
        api = api_from(args)
        if args.action == "list":
            found = api.call("GET", f"/api/v1/approvals?status={quote(args.status)}&limit={args.limit}")
            approvals = found["approvals"]
            terminal.emit(args, found, lambda _: "\n".join(describe(a) for a in approvals)
                          or f"no {args.status} approvals")
            return 0
        if args.action == "show":
            approval = api.call("GET", f"/api/v1/approvals/{quote(args.id)}")
            terminal.emit(args, approval, describe)
            return 0
        plan_hash = args.plan_hash or _confirmed_hash(api, args.id, args.action)
        answer = api.call("POST", f"/api/v1/approvals/{quote(args.id)}/{args.action}",
                          {"plan_hash": plan_hash, "reason": args.reason})
        terminal.emit(args, answer, describe)
        return 0
    except ApiError as exc:
        terminal.err(f"remediator: {exc}")
        return EXIT_STATUS.get(exc.error, 1)


def daemon_command(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None,
                   text: Callable[[Any], str]) -> int:
    """One call to the daemon's API, its answer printed (`-o`); the exit status says how it went."""
    try:
        answer = api_from(args).call(method, path, body)
    except ApiError as exc:
        terminal.err(f"remediator: {exc}")
        return EXIT_STATUS.get(exc.error, 1)
    terminal.emit(args, answer, text)
    return 0


def add_daemon_options(command: argparse.ArgumentParser, timeout_help: str) -> None:
    """Where the daemon is and who is asking: the options of every command that calls its API."""
    command.add_argument("--url", help=f"the daemon (default: $REMEDIATOR_URL, else {DEFAULT_URL})")
    command.add_argument("--token", help="API token (better: $REMEDIATOR_TOKEN, kept out of `ps`)")
    command.add_argument("--timeout", type=float, default=600.0, help=timeout_help)


def add_daemon_parser(sub: Any, name: str, about: str, parents: list[argparse.ArgumentParser],
                      actions: str) -> tuple[argparse.ArgumentParser, Any]:
    """A command that calls the daemon's API, and its subcommands' parser (`actions`: "list,close")."""
    command: argparse.ArgumentParser = sub.add_parser(name, parents=parents, help=about)
    add_daemon_options(command, "seconds to wait (default 600)")
    return command, command.add_subparsers(dest="action", required=True, metavar=f"{{{actions}}}")


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    """The `approvals` command; `parents` carry the output options."""
    approvals = sub.add_parser("approvals", parents=parents,
                               help="list, approve or reject held actions (through the daemon)")
    add_daemon_options(approvals, "seconds to wait; an approval waits for the action it runs (default 600)")
    action = approvals.add_subparsers(dest="action", required=True, metavar="{list,show,approve,reject}")
    listing = action.add_parser("list", parents=parents, help="approvals by status (default: pending)")
    listing.add_argument("--status", default="pending",
                         choices=["pending", "approved", "rejected", "expired", "no_longer_needed", "all"])
    listing.add_argument("--limit", type=int, default=50)
    show = action.add_parser("show", parents=parents, help="one approval: the plan, its hash, the votes")
    show.add_argument("id")
    for name in ("approve", "reject"):
        decide = action.add_parser(name, parents=parents,
                                   help=f"{name} an approval (the daemon runs what is approved)")
        decide.add_argument("id")
        decide.add_argument("--reason", required=True, help="why (recorded with your name)")
        decide.add_argument("--plan-hash", help="the plan hash you were shown (asked for interactively if omitted)")
    approvals.set_defaults(func=cmd_approvals)
