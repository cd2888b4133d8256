"""The text form of what the `remediator` command prints (`-o text`, the default); `-o json`
prints the same data as JSON. Every line goes through `plaintext.one_line`: the values are
alert senders' text, and a terminal obeys escape sequences in it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from remediator.clock import describe_duration
from remediator.plaintext import one_line


def _lines(lines: Sequence[str]) -> str:
    return "".join(one_line(line) + "\n" for line in lines)


def check_text(result: Mapping[str, Any]) -> str:
    """`remediator check`: a line for the directory, one per problem."""
    if result["valid"]:
        return _lines([f"{result['directory']}: {len(result['policies'])} policies OK"])
    return _lines([f"{result['directory']}: {len(result['problems'])} problem(s)",
                   *(f"  - {p}" for p in result["problems"])])


def incident_line(incident: Mapping[str, Any]) -> str:
    opened = str(incident["opened_at"])[:16].replace("T", " ")
    return (f"{incident['id']}  {incident['severity']}  {incident['status']:<8}  {incident['phase']:<7}  "
            f"{opened}  {incident['title']}")


def incidents_text(incidents: Sequence[Mapping[str, Any]]) -> str:
    return _lines([incident_line(i) for i in incidents]) if incidents else "no incidents\n"


def audit_line(record: Mapping[str, Any]) -> str:
    failure = f" ({record['failure_reason']})" if record.get("failure_reason") else ""
    return (f"{record['at']}  {record['incident_id']}  {record['policy']}  {record['action']} on "
            f"{record['target'] or '?'}: {record['verdict']} ({record['decision_reason']}) → "
            f"{record['outcome']}{failure}")


def audit_text(records: Sequence[Mapping[str, Any]]) -> str:
    return _lines([audit_line(r) for r in records]) if records else "no audit records\n"


def incident_text(shown: Mapping[str, Any]) -> str:
    """`incidents show`: the incident, its timeline and its audit records."""
    lines = [incident_line(shown), f"  alerts {shown['alert_count']} ({shown['firing']} firing)"
             + (f" · acknowledged by {shown['acknowledged_by']}" if shown["acknowledged_by"] else "")
             + (f" · root cause: {shown['root_cause']}" if shown["root_cause"] else ""), "", "timeline:"]
    lines += [f"  {e['at']}  {e['kind']:<12}  {e['message']}" for e in shown["timeline"]]
    lines += ["", "audit:"] + [f"  {audit_line(a)}" for a in shown["audit"]]
    return _lines(lines)


def _minutes(seconds: float | None) -> str:
    return describe_duration(timedelta(seconds=seconds)) if seconds is not None else "-"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def stats_text(stats: Mapping[str, Any]) -> str:
    """`incidents stats` for a terminal."""
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
    return _lines(lines)
