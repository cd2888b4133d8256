"""The `remediator` command: serve | check | test | simulate | incidents | approvals | postmortem | audit | token |
actions | store. Like amtool and promtool: `-o text|json` for every command that prints data, the
output alone on stdout (logs go to stderr), and an exit status that says whether the input was bad."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

from remediator.actions import catalog
from remediator.actions.base import ActionRegistry, AnyAction
from remediator.actions.registry import default_registry
from remediator.cli import approvals as cli_approvals
from remediator.cli import circuits as cli_circuits
from remediator.cli import incidents as cli_incidents
from remediator.cli import maintenance as cli_maintenance
from remediator.cli import pauses as cli_pauses
from remediator.cli import render, terminal
from remediator.cli import store as cli_store
from remediator.cli.iam import configured_policy, policy_json
from remediator.cli.simulate import PayloadError, render_plan, simulate
from remediator.cli.terminal import JSON_ALIAS, OUTPUT, OUTPUTS
from remediator.cli.tester import load_fixtures, render_report, report_data, run_fixtures
from remediator.clock import SystemClock
from remediator.daemon.app import holder_id, make_store
from remediator.daemon.intake import serve_intake
from remediator.daemon.serve import serve
from remediator.errors import BadRequest, FixtureError, PolicyError, SettingsError, StoreUnavailable
from remediator.incidents.reports import postmortem_report, stats_report
from remediator.model import IncidentStatus
from remediator.observability import configure_logging, with_loop_logging
from remediator.plaintext import without_controls
from remediator.policy.loader import FIXTURES_DIR, load_policies
from remediator.settings import Settings, load_settings, token_digest
from remediator.stores.schema import SchemaTooNew
from remediator.web.incidents_api import period
from remediator.web.views import audit_view, event_view, incident_view


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(Path(args.config) if args.config else None)


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging(settings.log.level, settings.log.format, process="core")
    asyncio.run(with_loop_logging(serve(settings, Path(args.config) if args.config else None)))
    return 0


def cmd_intake(args: argparse.Namespace) -> int:
    """An intake process of `serve` (started by it, not by people)."""
    settings = _settings(args)
    configure_logging(settings.log.level, settings.log.format, process=f"intake-{args.index}")
    asyncio.run(with_loop_logging(serve_intake(settings, args.listen_fd, args.core_socket)))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Validate a policy directory: 0 when every policy loads, 1 with every problem listed."""
    directory = Path(args.directory)
    try:
        names = [p.name for p in load_policies(directory, default_registry())]
        result: dict[str, Any] = {"directory": str(directory), "valid": True, "policies": names, "problems": []}
    except PolicyError as exc:
        result = {"directory": str(directory), "valid": False, "policies": [], "problems": exc.problems}
    if result["valid"] or args.output == "json":
        terminal.emit(args, result, render.check_text)
    else:
        terminal.err(render.check_text(result))  # as promtool: the problems are diagnostics, on stderr
    return 0 if result["valid"] else 1


def cmd_test(args: argparse.Namespace) -> int:
    """Run the policy fixtures of a directory: 0 when every case matched its expectation, else 1."""
    directory = Path(args.directory)
    settings = _settings(args).model_copy(update={"policies_dir": directory})
    policies = load_policies(directory, default_registry())
    cases = load_fixtures(Path(args.fixtures) if args.fixtures else directory / FIXTURES_DIR)
    # The report is the output (stdout); dry-run's own logs would bury it.
    configure_logging("critical", "console", stream=sys.stderr)
    report = asyncio.run(run_fixtures(settings, cases, [p.name for p in policies if p.enabled]))
    terminal.emit(args, report_data(report), lambda _: render_report(report))
    return 1 if report.failed else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging("warning", "console", stream=sys.stderr)  # stdout is the plan
    try:
        plan = asyncio.run(simulate(settings, Path(args.payload).read_bytes()))
    except PayloadError as exc:
        terminal.err(f"remediator: {args.payload}: {exc}")
        return 1
    terminal.emit(args, plan, render_plan)
    return 0


async def _with_store(settings: Settings, use: Callable[[Any], Coroutine[Any, Any, Any]]) -> Any:
    store = make_store(settings, f"cli:{holder_id()}")  # unique: replicas' stores lock their holder name
    await store.open()
    try:
        return await use(store)
    finally:
        await store.close()


def cmd_incidents(args: argparse.Namespace) -> int:
    if args.action in cli_incidents.ACTIONS:
        return cli_incidents.cmd_incident_api(args)
    settings = _settings(args)

    async def run(store: Any) -> int:
        if args.action == "stats":
            return await _stats(store, settings, args)
        if args.action == "show":
            incident = await store.get_incident(args.id)
            if incident is None:
                terminal.err(f"remediator: no incident {args.id}")
                return 1
            timeline = [event_view(e) for e in await store.timeline(args.id)]
            audit = [audit_view(a) for a in reversed(await store.list_audit(args.id, 1000))]
            terminal.emit(args, {**incident_view(incident), "timeline": timeline, "audit": audit},
                          render.incident_text)
            return 0
        status = IncidentStatus(args.status) if args.status else None
        incidents = [incident_view(i) for i in await store.list_incidents(status, args.limit)]
        terminal.emit(args, incidents, render.incidents_text)
        return 0

    result: int = asyncio.run(_with_store(settings, run))
    return result


async def _stats(store: Any, settings: Settings, args: argparse.Namespace) -> int:
    now = SystemClock().now()
    query = {k: v for k, v in (("since", args.since), ("until", args.until)) if v}
    try:
        since, until = period(query, now)
    except BadRequest as exc:
        terminal.err(f"remediator: {exc.detail}")
        return 2
    terminal.emit(args, await stats_report(store, settings, since, until, now), render.stats_text)
    return 0


def cmd_postmortem(args: argparse.Namespace) -> int:
    settings = _settings(args)
    output = Path(args.file or f"postmortem-{args.id}.md")
    if args.file != "-" and output.exists() and not args.force:
        terminal.err(f"remediator: {output} exists; edit it, or pass --force to replace it")
        return 1

    async def run(store: Any) -> str | None:
        return await postmortem_report(store, settings, args.id, SystemClock().now())

    text = asyncio.run(_with_store(settings, run))
    if text is None:
        terminal.err(f"remediator: no incident {args.id}")
        return 1
    if args.file == "-":
        terminal.emit(args, {"incident": args.id, "markdown": text}, lambda _: text)
        return 0
    output.write_text(without_controls(text), encoding="utf-8")
    terminal.emit(args, {"incident": args.id, "file": str(output)},
                  lambda _: f"{output}: postmortem draft of {args.id}, ready to edit")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run(store: Any) -> None:
        records = [audit_view(a) for a in await store.list_audit(args.incident, args.limit)]
        terminal.emit(args, records, render.audit_text)

    asyncio.run(_with_store(settings, run))
    return 0


def _action_data(action: AnyAction) -> dict[str, Any]:
    return {"type": action.type_name, "risk": action.risk.value, "summary": catalog.summary(action),
            "permissions": list(action.permissions), "follow_ups": list(action.follow_ups),
            "parameters": [asdict(p) for p in catalog.param_docs(action)]}


def cmd_actions(args: argparse.Namespace) -> int:
    registry = default_registry()
    if args.iam:
        settings = _settings(args)
        document = configured_policy(settings, registry)
        if not document["Statement"]:
            terminal.err(f"remediator: no enabled policy in {settings.policies_dir} uses an AWS action and the "
                         "daemon itself needs none: this document grants nothing (IAM refuses an empty Statement; "
                         "attach no policy)")
        terminal.out(policy_json(document))  # a JSON document whatever -o says: it is what IAM reads
        return 0
    if args.markdown:
        if args.output == "json":
            terminal.err("remediator: --markdown is Markdown; -o json goes with the listing")
            return 2
        return _markdown(args, registry)
    if args.write_readme is not None:
        terminal.err("remediator: --write-readme goes with --markdown")
        return 2
    terminal.emit(args, [_action_data(a) for a in registry], lambda _: catalog.listing(registry))
    return 0


def _markdown(args: argparse.Namespace, registry: ActionRegistry) -> int:
    section = catalog.markdown(registry)
    if args.write_readme is None:
        terminal.out(section)
        return 0
    readme = Path(args.write_readme)
    text = readme.read_text(encoding="utf-8")
    try:
        updated = catalog.with_readme_section(text, section)
    except ValueError as exc:
        terminal.err(f"remediator: {readme}: {exc}")
        return 1
    if updated != text:
        readme.write_text(updated, encoding="utf-8")
    terminal.out(f"{readme}: actions section {'updated' if updated != text else 'already up to date'}")
    return 0


def cmd_token_hash(args: argparse.Namespace) -> int:
    token = args.token if args.token else getpass.getpass("token: ")
    digest = token_digest(token)
    terminal.emit(args, {"sha256": digest}, lambda _: digest)
    return 0


def _add_actions_parser(sub: Any) -> None:
    actions = sub.add_parser("actions", parents=[OUTPUT], help="the registered actions: type, risk, permissions, "
                                                                "parameters")
    shown = actions.add_mutually_exclusive_group()
    shown.add_argument("--iam", action="store_true",
                       help="the least-privilege IAM policy (JSON) the enabled policies in policies_dir need")
    shown.add_argument("--markdown", action="store_true", help="the README's actions section")
    actions.add_argument("--write-readme", nargs="?", const="README.md", metavar="README",
                         help="with --markdown: replace the section between the actions markers in README "
                              "(default README.md)")
    actions.set_defaults(func=cmd_actions)


def _add_store_parsers(sub: Any) -> None:
    """The commands that read the store: incidents, postmortem, audit."""
    incidents = sub.add_parser("incidents", parents=[OUTPUT], help="read incidents from the store")
    choices = ",".join(("list", "show", "stats", *cli_incidents.ACTIONS))
    inc_sub = incidents.add_subparsers(dest="action", required=True, metavar=f"{{{choices}}}")
    listing = inc_sub.add_parser("list", parents=[OUTPUT], help="the latest incidents")
    listing.add_argument("--status", choices=[s.value for s in IncidentStatus])
    listing.add_argument("--limit", type=int, default=50)
    show = inc_sub.add_parser("show", parents=[OUTPUT], help="one incident with its timeline and audit records")
    show.add_argument("id")
    stats = inc_sub.add_parser("stats", parents=[OUTPUT, JSON_ALIAS],
                               help="per month and severity, recovery, automation, targets, approvals")
    stats.add_argument("--since", help="a date (2026-01-01) or RFC 3339 time; default: 365 days before --until")
    stats.add_argument("--until", help="a date or RFC 3339 time, exclusive; default: now")
    cli_incidents.add_parsers(inc_sub)
    incidents.set_defaults(func=cmd_incidents)
    postmortem = sub.add_parser("postmortem", parents=[OUTPUT], help="write a Markdown postmortem draft of an incident")
    postmortem.add_argument("id")
    postmortem.add_argument("--file", "-f", help="file to write (default postmortem-ID.md; - for stdout)")
    postmortem.add_argument("--force", action="store_true", help="replace an existing file")
    postmortem.set_defaults(func=cmd_postmortem)
    audit = sub.add_parser("audit", parents=[OUTPUT], help="read the audit trail")
    audit.add_argument("--incident")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(func=cmd_audit)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="remediator", description="Alert-driven auto-remediation daemon.",
        epilog="exit status: 0 ok; 1 the input is bad (invalid settings, policies or payload, a failing test "
               "case, a refused request); 2 usage; 3 the store or the daemon cannot be reached")
    main.add_argument("--version", action="version", version=f"%(prog)s {version('remediator')}")
    main.add_argument("--config", "-c", help="settings YAML (default: $REMEDIATOR_CONFIG, else built-in defaults)")
    main.add_argument("--output", "-o", choices=OUTPUTS, default="text",
                      help="text for people (default) or json for programs; also after the command")
    sub = main.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("serve", help="run the daemon").set_defaults(func=cmd_serve)
    intake = sub.add_parser("intake")  # started by `serve`, not by people: no help line
    intake.add_argument("--listen-fd", type=int, required=True)
    intake.add_argument("--core-socket", required=True)
    intake.add_argument("--index", type=int, default=1, help="which intake process this is (its logs' process)")
    intake.set_defaults(func=cmd_intake)
    check = sub.add_parser("check", parents=[OUTPUT], help="validate a policy directory; every problem is reported")
    check.add_argument("directory")
    check.set_defaults(func=cmd_check)
    test = sub.add_parser("test", parents=[OUTPUT],
                          help="run policy fixtures: payloads in, expected decisions out (dry-run)")
    test.add_argument("directory", help="the policy directory")
    test.add_argument("--fixtures", help=f"the fixture directory (default: DIRECTORY/{FIXTURES_DIR})")
    test.set_defaults(func=cmd_test)
    simulate = sub.add_parser("simulate", parents=[OUTPUT, JSON_ALIAS],
                              help="run a payload through the pipeline in dry-run and print the plan")
    simulate.add_argument("payload", help="an Alertmanager webhook body or an SNS envelope (JSON file; an SNS "
                                     "signature is not verified)")
    simulate.set_defaults(func=cmd_simulate)
    _add_store_parsers(sub)
    cli_approvals.add_parser(sub, [OUTPUT, JSON_ALIAS])
    cli_circuits.add_parser(sub, [OUTPUT])
    cli_pauses.add_parser(sub, [OUTPUT])
    cli_maintenance.add_parser(sub, [OUTPUT])
    cli_store.add_parser(sub)
    _add_actions_parser(sub)
    token = sub.add_parser("token", help="API token helpers")
    token_sub = token.add_subparsers(dest="action", required=True, metavar="{hash}")
    hashing = token_sub.add_parser("hash", parents=[OUTPUT], help="print the SHA-256 form to put under api.tokens")
    hashing.add_argument("token", nargs="?", help="the token (prompted for when omitted)")
    token.set_defaults(func=cmd_token_hash)
    return main


DAEMON_COMMANDS = ("serve", "intake")


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status as amtool and promtool use it: 0 ok, 1 bad input, 2 usage; 3 a server unreachable."""
    args = parser().parse_args(argv)
    if args.command not in DAEMON_COMMANDS:
        # stdout is the command's output (text or JSON): whatever logs, logs to stderr.
        configure_logging("warning", "console", stream=sys.stderr)
    try:
        code: int = args.func(args)
    except (SettingsError, PolicyError, FixtureError) as exc:
        terminal.err(f"remediator: {exc}")
        return 1
    except SchemaTooNew as exc:
        terminal.err(f"remediator: refusing to start: {exc}")
        return 2
    except StoreUnavailable as exc:
        terminal.err(f"remediator: the store is unavailable: {exc}")
        return 3
    except FileNotFoundError as exc:
        terminal.err(f"remediator: {exc.filename}: no such file")
        return 1
    except OSError as exc:
        terminal.err(f"remediator: {exc.filename or ''}: {exc.strerror or exc}")
        return 1
    return code
