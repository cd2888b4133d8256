"""`remediator test POLICY_DIR`: policy fixtures, a payload in and the expected decisions out.

A fixture file is YAML under `POLICY_DIR/fixtures/` (the policy loader skips that folder):

```yaml
cases:
  - name: rds-connections-high-tells-the-dba
    payload: payloads/cloudwatch-rds-connections-high.json   # relative to this file
    alerts:                        # one entry per alert of the payload, in its order
      - name: erp-prod-rds-connections-high                  # optional
        severity: P2               # optional: the incident's severity
        matched: [rds-connections-high]                       # exactly these policies, in load order
        requests:                  # exactly these requests, in the order recorded
          - policy: rds-connections-high
            action: notify.webhook
            target: notify:dba
            verdict: allow         # allow | deny | hold
            reason: allowed        # optional: the decision reason (`skipped`: an ordered step's
                                   # condition on the step before it was not met)
            params: {to: dba}      # optional: these parameters, as validated
            outcome: dry_run       # optional
            joined: false          # true: the alert joined its incident's earlier request for this plan
```

Each case runs through `remediator.simulate`: dry-run, a throwaway store, fresh guardrail state,
the settings given. A payload is an Alertmanager body or an SNS envelope whose signature is not
verified (the output says so). Every difference is reported, and so is a planned notification to
a target the settings do not define, or a report they lack, by name (its request also fails its
precheck, as in enforce, but a case that expects no outcome would not say why).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediator.actions.postgres.report import ReportParams, configuration_problem
from remediator.cli.simulate import PayloadError, simulate
from remediator.errors import FixtureError
from remediator.model import DecisionReason, Outcome, Severity, Verdict
from remediator.plaintext import one_line
from remediator.policy.loader import FIXTURES_DIR
from remediator.settings import Settings

NOTIFY = "notify.webhook"
REPORT = "postgres.report"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedRequest(_Strict):
    policy: str
    action: str
    target: str
    verdict: Verdict
    reason: DecisionReason | None = None
    params: dict[str, Any] | None = None
    outcome: Outcome | None = None
    joined: bool = False  # the alert joined a request its incident made for an earlier alert


class ExpectedAlert(_Strict):
    name: str | None = None
    severity: Severity | None = None
    matched: list[str]
    requests: list[ExpectedRequest]


class Case(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    payload: str = Field(min_length=1)
    alerts: list[ExpectedAlert]


class FixtureFile(_Strict):
    cases: list[Case] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class LoadedCase:
    file: Path
    case: Case
    payload: Path

    @property
    def label(self) -> str:
        return f"{self.file}: {self.case.name}"


@dataclass(slots=True)
class CaseResult:
    loaded: LoadedCase
    kind: str = ""
    note: str = ""
    mismatches: list[str] = field(default_factory=list)
    matched: set[str] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return not self.mismatches


@dataclass(slots=True)
class Report:
    results: list[CaseResult]
    uncovered: list[str]  # enabled policies no case expects to match

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]


def fixture_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_fixtures(directory: Path) -> list[LoadedCase]:
    """Every case of every fixture file under `directory`; FixtureError lists every problem."""
    if not directory.is_dir():
        raise FixtureError([f"{directory}: not a directory (policy fixtures live in <policies>/{FIXTURES_DIR}/)"])
    loaded: list[LoadedCase] = []
    problems: list[str] = []
    names: dict[str, Path] = {}
    for path in fixture_files(directory):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
            fixture = FixtureFile.model_validate(document)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(f"{path}: cannot read ({exc})".replace("\n", " "))
            continue
        except ValidationError as exc:
            problems += [f"{path}: {_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
            continue
        for index, case in enumerate(fixture.cases):
            payload = path.parent / case.payload
            if case.name in names:
                problems.append(f"{path}: cases[{index}] ({case.name}): name already used in {names[case.name]}")
            elif not payload.is_file():
                problems.append(f"{path}: cases[{index}] ({case.name}).payload: no file {payload}")
            else:
                names[case.name] = path
                loaded.append(LoadedCase(path, case, payload))
    if problems:
        raise FixtureError(problems)
    if not loaded:
        raise FixtureError([f"{directory}: no fixture cases (YAML files with `cases:`)"])
    return loaded


def _loc(parts: Sequence[int | str]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def run_fixtures(settings: Settings, cases: Sequence[LoadedCase], policy_names: Sequence[str]) -> Report:
    """Simulate every case and compare; policies no case matches are listed as uncovered."""
    results = [await run_case(settings, loaded) for loaded in cases]
    covered = set().union(*(r.matched for r in results))
    return Report(results, [name for name in policy_names if name not in covered])


async def run_case(settings: Settings, loaded: LoadedCase) -> CaseResult:
    result = CaseResult(loaded)
    try:
        plan = await simulate(settings, loaded.payload.read_bytes())
    except PayloadError as exc:
        result.mismatches.append(f"payload {loaded.payload}: {exc}")
        return result
    result.kind, result.note = plan["payload"]["kind"], plan["payload"]["note"]
    expected, actual = loaded.case.alerts, plan["alerts"]
    result.matched = {name for entry in actual for name in entry["matched"]}
    if len(expected) != len(actual):
        names = ", ".join(entry["alert"]["name"] for entry in actual)
        result.mismatches.append(f"the payload holds {len(actual)} alert(s) ({names}); the case expects "
                                 f"{len(expected)}")
    for index, (want, got) in enumerate(zip(expected, actual, strict=False)):
        where = f"alerts[{index}] ({got['alert']['name']})"
        result.mismatches += [f"{where}: {m}" for m in compare_alert(want, got)]
        result.mismatches += [f"{where}: {m}" for m in undefined_targets(got, settings)]
    return result


def compare_alert(want: ExpectedAlert, got: Mapping[str, Any]) -> Iterator[str]:
    """What differs between one alert's expectation and its simulated plan entry."""
    if want.name is not None and want.name != got["alert"]["name"]:
        yield f"name: expected {want.name!r}, got {got['alert']['name']!r}"
    incident = got["incident"]
    severity = incident["severity"] if incident else None
    if want.severity is not None and want.severity.value != severity:
        yield f"severity: expected {want.severity.value}, got {severity or 'no incident'}"
    if want.matched != got["matched"]:
        yield f"matched: expected {want.matched or 'no policy'}, got {got['matched'] or 'no policy'}"
    order = {name: i for i, name in enumerate(got["matched"])}
    requests = sorted(got["requests"], key=lambda r: order.get(r["policy"], len(order)))
    if len(want.requests) != len(requests):
        planned = "; ".join(f"{r['policy']}: {r['action']} on {r['target']} ({r['verdict']})" for r in requests)
        yield f"requests: expected {len(want.requests)}, got {len(requests)}" + (f" ({planned})" if planned else "")
    for index, (expected, request) in enumerate(zip(want.requests, requests, strict=False)):
        yield from (f"requests[{index}].{m}" for m in compare_request(expected, request))


def compare_request(want: ExpectedRequest, got: Mapping[str, Any]) -> Iterator[str]:
    for key in ("policy", "action", "target"):
        if getattr(want, key) != got[key]:
            yield f"{key}: expected {getattr(want, key)!r}, got {got[key]!r}"
    decided = f"{got['verdict']} ({got['decision_reason']}" + (
        f": {got['decision_detail']})" if got["decision_detail"] else ")")
    if want.verdict.value != got["verdict"]:
        yield f"verdict: expected {want.verdict.value}, got {decided}"
    elif want.reason is not None and want.reason.value != got["decision_reason"]:
        yield f"reason: expected {want.reason.value}, got {decided}"
    for key, value in (want.params or {}).items():
        if key not in got["params"]:
            yield f"params.{key}: expected {value!r}, not planned"
        elif got["params"][key] != value:
            yield f"params.{key}: expected {value!r}, got {got['params'][key]!r}"
    if want.joined != got.get("joined", False):
        yield (f"joined: expected {'the earlier request' if want.joined else 'a request of its own'}, got "
               f"{'the earlier request' if got.get('joined') else 'a request of its own'}")
    if want.outcome is not None and want.outcome.value != got["outcome"]:
        yield f"outcome: expected {want.outcome.value}, got {got['outcome']}"


def undefined_targets(got: Mapping[str, Any], settings: Settings) -> Iterator[str]:
    """Notifications to a target, and reports, these settings lack: in enforce mode they would never run."""
    for request in got["requests"]:
        to = request["params"].get("to") if request["action"] == NOTIFY else None
        if isinstance(to, str) and to not in settings.notify:
            yield (f"{request['policy']} notifies {to!r}, which is not under `notify:` in the settings used "
                   f"(pass the daemon's settings with --config)")
        problem = report_problem(request["params"], settings) if request["action"] == REPORT else None
        if problem:
            yield f"{request['policy']}: {problem} (pass the daemon's settings with --config)"


def report_problem(params: Mapping[str, Any], settings: Settings) -> str | None:
    try:
        validated = ReportParams.model_validate(params)
    except ValidationError:
        return None  # the plan already says these parameters are invalid
    return configuration_problem(validated, settings.targets)


def report_data(report: Report) -> dict[str, Any]:
    """The report as `remediator test -o json` prints it."""
    cases = [{"file": str(r.loaded.file), "name": r.loaded.case.name, "ok": r.ok, "payload_kind": r.kind,
              "note": r.note, "mismatches": r.mismatches} for r in report.results]
    return {"cases": cases, "uncovered": report.uncovered,
            "passed": len(report.results) - len(report.failed), "failed": len(report.failed)}


def render_report(report: Report) -> str:
    """The report for a terminal: one line per entry, whatever the payloads' values hold."""
    lines = []
    for result in report.results:
        kind = f" [{result.kind}, signature not verified]" if result.kind == "sns" else ""
        lines.append(f"{'ok  ' if result.ok else 'FAIL'} {result.loaded.label}{kind}")
        lines += [f"       {m}" for m in result.mismatches]
    if report.uncovered:
        lines += ["", f"not matched by any case: {', '.join(report.uncovered)}"]
    if any(r.kind == "sns" for r in report.results):
        lines += ["", "note: SNS envelopes were parsed without verifying their signatures (the daemon verifies "
                      "every SNS message before it parses it)"]
    passed = len(report.results) - len(report.failed)
    lines += ["", f"{len(report.results)} cases: {passed} passed, {len(report.failed)} failed"]
    return "".join(one_line(line) + "\n" for line in lines)
