"""The `remediator` command: serve | check | test | simulate | incidents | approvals | postmortem | audit | token |
actions | store."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from remediator.actions import catalog
from remediator.actions.registry import default_registry
from remediator.cli import approvals as cli_approvals
from remediator.cli import incidents as cli_incidents
from remediator.cli import store as cli_store
from remediator.cli import terminal
from remediator.cli.iam import configured_policy, policy_json
from remediator.cli.simulate import PayloadError, render_plan, simulate
from remediator.cli.tester import load_fixtures, render_report, run_fixtures
from remediator.clock import SystemClock, describe_duration
from remediator.daemon.app import holder_id, make_store
from remediator.daemon.intake import serve_intake
from remediator.daemon.serve import serve
from remediator.errors import BadRequest, FixtureError, PolicyError, SettingsError, StoreUnavailable
from remediator.incidents.reports import postmortem_report, stats_report
from remediator.model import IncidentStatus
from remediator.observability import configure_logging, with_loop_logging
from remediator.plaintext import one_line, without_controls
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
    directory = Path(args.directory)
    policies = load_policies(directory, default_registry())
    terminal.out(f"{directory}: {len(policies)} policies OK")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    """Run the policy fixtures of a directory: 0 when every case matched its expectation, else 1."""
    directory = Path(args.directory)
    settings = _settings(args).model_copy(update={"policies_dir": directory})
    policies = load_policies(directory, default_registry())
    cases = load_fixtures(Path(args.fixtures) if args.fixtures else directory / FIXTURES_DIR)
    # The report is the output (stdout); dry-run's own logs would bury it.
    configure_logging("critical", "console", stream=sys.stderr)
    report = asyncio.run(run_fixtures(settings, cases, [p.name for p in policies if p.enabled]))
    terminal.out(render_report(report))
    return 1 if report.failed else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    configure_logging("warning", "console", stream=sys.stderr)  # stdout is the plan (JSON with --json)
    try:
        plan = asyncio.run(simulate(settings, Path(args.payload).read_bytes()))
    except PayloadError as exc:
        terminal.err(f"remediator: {args.payload}: {exc}")
        return 2
    if args.json:
        terminal.out_json(plan)
    else:
        terminal.out(render_plan(plan))
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
                terminal.err(f"no incident {args.id}")
                return 1
            timeline = [event_view(e) for e in await store.timeline(args.id)]
            terminal.out_json({**incident_view(incident), "timeline": timeline,
                               "audit": [audit_view(a) for a in reversed(await store.list_audit(args.id, 1000))]})
            return 0
        status = IncidentStatus(args.status) if args.status else None
        for incident in await store.list_incidents(status, args.limit):
            terminal.out(f"{incident.id}  {incident.severity.value}  {incident.status.value:<8}  "
                         f"{incident.phase.value:<10}  {incident.opened_at:%Y-%m-%d %H:%M}  {one_line(incident.title)}")
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
    stats = await stats_report(store, settings, since, until, now)
    if args.json:
        terminal.out_json(stats)
    else:
        terminal.out(render_stats(stats))
    return 0


def _minutes(seconds: float | None) -> str:
    return describe_duration(timedelta(seconds=seconds)) if seconds is not None else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_stats(stats: dict[str, Any]) -> str:
    """The statistics for a terminal."""
    lines = [f"incidents opened {stats['since'][:10]} .. {stats['until'][:10]}: {stats['incidents']['total']}",
             "", "month     P1  P2  P3  P4"]
    lines += [f"{month}  " + "  ".join(f"{n[s]:>2}" for s in ("P1", "P2", "P3", "P4"))
              for month, n in stats["incidents"]["by_month"].items()]
    recovery, auto, breaches = stats["recovery"], stats["auto_remediated"], stats["sla_breaches"]
    lines += ["", f"recovered: {recovery['recovered']}, time to recover mean {_minutes(recovery['mean_seconds'])}, "
              f"max {_minutes(recovery['max_seconds'])}"]
    share = f"{auto['share']:.0%}" if auto["share"] is not None else "-"
    lines += [f"auto-remediated: {auto['count']} ({share} of recovered)",
              f"targets missed: respond {breaches['respond']}, recover {breaches['recover']}"]
    lines += ["", "runbook §10.3, per month and severity (resolution in minutes):",
              "month    severity  count  resolved  avg_minutes  max_minutes"]
    lines += [f"{r['month']}  {r['severity']:<8}  {r['incident_count']:>5}  {r['resolved_count']:>8}  "
              f"{_number(r['avg_resolution_minutes']):>11}  {_number(r['max_resolution_minutes']):>11}"
              for r in stats["monthly"]]
    mttr = stats["mttr"]
    lines += [f"MTTR {mttr['since'][:10]} .. {mttr['until'][:10]} (minutes): " + ", ".join(
        f"{s} {_number(v['mttr_minutes'])} ({v['resolved_count']} resolved)" for s, v in mttr["by_severity"].items())]
    approvals = stats["approvals"]
    outcomes = ", ".join(f"{k} {v}" for k, v in approvals["by_outcome"].items())
    lines += [f"approvals: {approvals['total']} ({outcomes}); median time to decide "
              f"{_minutes(approvals['median_latency_seconds'])}"]
    return "\n".join(lines) + "\n"


def cmd_postmortem(args: argparse.Namespace) -> int:
    settings = _settings(args)
    output = Path(args.output or f"postmortem-{args.id}.md")
    if args.output != "-" and output.exists() and not args.force:
        terminal.err(f"remediator: {output} exists; edit it, or pass --force to replace it")
        return 1

    async def run(store: Any) -> str | None:
        return await postmortem_report(store, settings, args.id, SystemClock().now())

    text = asyncio.run(_with_store(settings, run))
    if text is None:
        terminal.err(f"no incident {args.id}")
        return 1
    if args.output == "-":
        terminal.out(text)
    else:
        output.write_text(without_controls(text), encoding="utf-8")
        terminal.out(f"{output}: postmortem draft of {args.id}, ready to edit")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def run(store: Any) -> None:
        terminal.out_json([audit_view(a) for a in await store.list_audit(args.incident, args.limit)])

    asyncio.run(_with_store(settings, run))
    return 0


def cmd_actions(args: argparse.Namespace) -> int:
    registry = default_registry()
    if args.iam:
        settings = _settings(args)
        document = configured_policy(settings, registry)
        if not document["Statement"]:
            terminal.err(f"remediator: no enabled policy in {settings.policies_dir} uses an AWS action and the "
                         "daemon itself needs none: this document grants nothing (IAM refuses an empty Statement; "
                         "attach no policy)")
        terminal.out(policy_json(document))
        return 0
    if args.markdown:
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
            return 2
        if updated != text:
            readme.write_text(updated, encoding="utf-8")
        terminal.out(f"{readme}: actions section {'updated' if updated != text else 'already up to date'}")
        return 0
    if args.write_readme is not None:
        terminal.err("remediator: --write-readme goes with --markdown")
        return 2
    terminal.out(catalog.listing(registry))
    return 0


def cmd_token_hash(args: argparse.Namespace) -> int:
    token = args.token if args.token else getpass.getpass("token: ")
    terminal.out(token_digest(token))
    return 0


def _add_actions_parser(sub: Any) -> None:
    actions = sub.add_parser("actions", help="the registered actions: type, risk, permissions, parameters")
    shown = actions.add_mutually_exclusive_group()
    shown.add_argument("--iam", action="store_true",
                       help="the least-privilege IAM policy (JSON) the enabled policies in policies_dir need")
    shown.add_argument("--markdown", action="store_true", help="the README's actions section")
    actions.add_argument("--write-readme", nargs="?", const="README.md", metavar="README",
                         help="with --markdown: replace the section between the actions markers in README "
                              "(default README.md)")
    actions.set_defaults(func=cmd_actions)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="remediator", description="Alert-driven auto-remediation daemon.")
    main.add_argument("--config", "-c", help="settings YAML (default: $REMEDIATOR_CONFIG, else built-in defaults)")
    sub = main.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the daemon").set_defaults(func=cmd_serve)
    intake = sub.add_parser("intake", help=argparse.SUPPRESS)
    intake.add_argument("--listen-fd", type=int, required=True)
    intake.add_argument("--core-socket", required=True)
    intake.add_argument("--index", type=int, default=1, help="which intake process this is (its logs' process)")
    intake.set_defaults(func=cmd_intake)
    check = sub.add_parser("check", help="validate a policy directory; every problem is reported")
    check.add_argument("directory")
    check.set_defaults(func=cmd_check)
    test = sub.add_parser("test", help="run policy fixtures: payloads in, expected decisions out (dry-run)")
    test.add_argument("directory", help="the policy directory")
    test.add_argument("--fixtures", help=f"the fixture directory (default: DIRECTORY/{FIXTURES_DIR})")
    test.set_defaults(func=cmd_test)
    simulate = sub.add_parser("simulate", help="run a payload through the pipeline in dry-run and print the plan")
    simulate.add_argument("payload", help="an Alertmanager webhook body or an SNS envelope (JSON file; an SNS "
                                     "signature is not verified)")
    simulate.add_argument("--json", action="store_true", help="print the plan as JSON")
    simulate.set_defaults(func=cmd_simulate)
    incidents = sub.add_parser("incidents", help="read incidents from the store; change them through the daemon")
    inc_sub = incidents.add_subparsers(dest="action", required=True)
    listing = inc_sub.add_parser("list")
    listing.add_argument("--status", choices=[s.value for s in IncidentStatus])
    listing.add_argument("--limit", type=int, default=50)
    show = inc_sub.add_parser("show")
    show.add_argument("id")
    stats = inc_sub.add_parser("stats", help="per month and severity, recovery, automation, targets, approvals")
    stats.add_argument("--since", help="a date (2026-01-01) or RFC 3339 time; default: 365 days before --until")
    stats.add_argument("--until", help="a date or RFC 3339 time, exclusive; default: now")
    stats.add_argument("--json", action="store_true")
    cli_incidents.add_parsers(inc_sub)
    incidents.set_defaults(func=cmd_incidents)
    cli_approvals.add_parser(sub)
    cli_store.add_parser(sub)
    postmortem = sub.add_parser("postmortem", help="write a Markdown postmortem draft of an incident")
    postmortem.add_argument("id")
    postmortem.add_argument("--output", "-o", help="file to write (default postmortem-ID.md; - for stdout)")
    postmortem.add_argument("--force", action="store_true", help="replace an existing file")
    postmortem.set_defaults(func=cmd_postmortem)
    audit = sub.add_parser("audit", help="read the audit trail")
    audit.add_argument("--incident")
    audit.add_argument("--limit", type=int, default=50)
    audit.set_defaults(func=cmd_audit)
    _add_actions_parser(sub)
    token = sub.add_parser("token", help="API token helpers")
    token_sub = token.add_subparsers(dest="action", required=True)
    hashing = token_sub.add_parser("hash", help="print the SHA-256 form to put under api.tokens")
    hashing.add_argument("token", nargs="?", help="the token (prompted for when omitted)")
    token.set_defaults(func=cmd_token_hash)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except (SettingsError, PolicyError, FixtureError) as exc:
        terminal.err(f"remediator: {exc}")
        return 2
    except SchemaTooNew as exc:
        terminal.err(f"remediator: refusing to start: {exc}")
        return 2
    except StoreUnavailable as exc:
        terminal.err(f"remediator: the store is unavailable: {exc}")
        return 3
    except FileNotFoundError as exc:
        terminal.err(f"remediator: {exc.filename}: no such file")
        return 2
    return code
