"""`remediator incidents phase|check|role|postmortem-set|prevention|declaration|report`: what people
do to an incident, through the running daemon's API (as `remediator approvals` does), so that
the change is recorded with the token's name and the daemon's clock, like one made in the API.
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import quote

from remediator.cli import terminal
from remediator.cli.approvals import DEFAULT_URL, ApiError, api_from
from remediator.incidents.record import CHECKLISTS, COUNT_FIELDS, LIST_FIELDS, TEXT_FIELDS
from remediator.model import Phase
from remediator.settings.people import INCIDENT_ROLES

ACTIONS = ("phase", "check", "role", "postmortem-set", "prevention", "declaration", "report")


def _body(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The API command and its body for a changing action."""
    if args.action == "phase":
        return "phase", {"phase": args.phase, "note": args.note}
    if args.action == "check":
        return "checklist", {"list": args.list, "item": args.item, "checked": not args.uncheck, "note": args.note}
    if args.action == "role":
        return "roles", {"role": args.role, "person": args.person}
    if args.action == "prevention":
        return "prevention-actions", {"action": args.what, "owner": args.owner, "due": args.due}
    fields: dict[str, Any] = {name: getattr(args, name) for name in (*TEXT_FIELDS, *COUNT_FIELDS, *LIST_FIELDS)
                              if getattr(args, name) is not None}
    return "postmortem-fields", fields


def render_declaration(view: dict[str, Any]) -> str:
    """The checklists for a terminal, `[x]` with who and when."""
    lines = [f"{view['incident_id']}  channel {view['channel'] or '-'}"
             + (" (created)" if view["channel_created"] else "")]
    lines += [f"  {role}: " + (f"{found['person']} (by {found['by']} at {found['at']})" if found else "-")
              for role, found in view["roles"].items()]
    for name, sections in view["checklists"].items():
        lines.append(f"{name} checklist")
        for section in sections:
            lines.append(f"  {section['section']}")
            lines += [f"    [{'x' if i['checked'] else ' '}] {i['item']}: {i['text']}"
                      + (f" — {i['by']} {i['at']}" if i["by"] else "") for i in section["items"]]
    return "\n".join(lines)


def cmd_incident_api(args: argparse.Namespace) -> int:
    try:
        api = api_from(args)
        base = f"/api/v1/incidents/{quote(args.id, safe='')}"
        if args.action == "report":
            terminal.out(api.call_text("GET", f"{base}/report").rstrip("\n"))
            return 0
        if args.action == "declaration":
            view = api.call("GET", f"{base}/declaration")
            terminal.emit(args, view, render_declaration)
            return 0
        command, body = _body(args)
        incident = api.call("POST", f"{base}/{command}", body)
        if getattr(args, "output", "text") == "json":
            terminal.out_json(incident)
        else:
            terminal.out(f"{incident['id']}  {incident['severity']}  {incident['status']}  phase {incident['phase']}")
        return 0
    except ApiError as exc:
        terminal.err(f"remediator: {exc}")
        return 3 if exc.error == "unreachable" else 1


def add_parsers(inc_sub: Any) -> None:
    """The API-backed actions, under `remediator incidents`."""
    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = inc_sub.add_parser(name, parents=[terminal.OUTPUT, terminal.JSON_ALIAS],
                                                             help=help_text)
        parser.add_argument("id")
        parser.add_argument("--url", help=f"the daemon (default: $REMEDIATOR_URL, else {DEFAULT_URL})")
        parser.add_argument("--token", help="API token (better: $REMEDIATOR_TOKEN, kept out of `ps`)")
        parser.add_argument("--timeout", type=float, default=30.0)
        return parser

    phase = action("phase", "move the incident on to a later phase of the runbook's seven")
    phase.add_argument("phase", choices=[p.value for p in Phase if p not in (Phase.DETECT, Phase.CLOSED)])
    phase.add_argument("--note", default="")
    check = action("check", "check an item of the declaration (§4.2) or prevention (§10.2) checklist")
    check.add_argument("item", help="e.g. symptoms, commander, user_notice (declaration); monitoring (prevention)")
    check.add_argument("--list", default="declaration", choices=list(CHECKLISTS))
    check.add_argument("--uncheck", action="store_true", help="record it as not done")
    check.add_argument("--note", default="")
    role = action("role", "assign a role of the incident (§3.1) to a person")
    role.add_argument("role", choices=list(INCIDENT_ROLES))
    role.add_argument("person")
    fields = action("postmortem-set", "set fields of the postmortem (§10.1); only those given change")
    for name, help_text in TEXT_FIELDS.items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=name, help=help_text)
    for name, help_text in COUNT_FIELDS.items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, help=help_text)
    for name, help_text in LIST_FIELDS.items():
        fields.add_argument(f"--{name.replace('_', '-')}", dest=name, action="append",
                            help=f"{help_text} (repeat the option; the list given replaces the one recorded)")
    prevention = action("prevention", "add a row to the postmortem's prevention actions (조치, 담당자, 완료일)")
    prevention.add_argument("what", help="the action")
    prevention.add_argument("--owner", required=True)
    prevention.add_argument("--due", required=True, help="a date, e.g. 2026-01-13")
    action("declaration", "the checklists with who checked what, the roles and the channel")
    action("report", "the executive report (Markdown)")
