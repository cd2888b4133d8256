"""Which policies an alert matches: pure, no I/O, indexed by source and alert name.

Policies with an exact `alertname` are found by a dictionary lookup; only the ones with a glob,
a regex or no name condition are tried one by one, and only within the alert's source. So the
cost of matching does not grow with the number of unrelated policies.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from remediator.model import Alert, Severity
from remediator.policy.model import GlobName, LabelAbsent, LabelCondition, LabelIn, LabelRegex, Policy

ANY_SOURCE = "*"

LabelTest = Callable[[Mapping[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Match:
    """An alert a policy applies to."""

    policy: Policy
    alert: Alert


def _label_test(name: str, condition: LabelCondition) -> LabelTest:
    if isinstance(condition, str):
        return lambda labels: labels.get(name) == condition
    if isinstance(condition, LabelRegex):
        pattern = re.compile(condition.regex)
        return lambda labels: name in labels and pattern.fullmatch(labels[name]) is not None
    if isinstance(condition, LabelIn):
        allowed = frozenset(condition.in_)
        return lambda labels: labels.get(name) in allowed
    assert isinstance(condition, LabelAbsent)
    return lambda labels: name not in labels


def _name_test(policy: Policy) -> Callable[[str], bool] | None:
    matcher = policy.match.alertname
    if matcher is None or isinstance(matcher, str):
        return None
    if isinstance(matcher, GlobName):
        pattern = re.compile(fnmatch.translate(matcher.glob))
    else:
        pattern = re.compile(matcher.regex)
    return lambda name: pattern.fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class _Compiled:
    order: int
    policy: Policy
    name_test: Callable[[str], bool] | None
    label_tests: tuple[LabelTest, ...]

    def accepts(self, alert: Alert) -> bool:
        if not self.policy.match.accepts_status(alert.status):
            return False
        if self.name_test is not None and not self.name_test(alert.name):
            return False
        labels = alert.labels
        return all(test(labels) for test in self.label_tests)


class PolicyIndex:
    """The loaded policies, indexed for matching."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies: tuple[Policy, ...] = tuple(p for p in policies if p.enabled)
        self._exact: dict[tuple[str, str], list[_Compiled]] = defaultdict(list)
        self._scan: dict[str, list[_Compiled]] = defaultdict(list)
        for order, policy in enumerate(self.policies):
            compiled = _Compiled(
                order, policy, _name_test(policy),
                tuple(_label_test(k, v) for k, v in policy.match.labels.items()),
            )
            name = policy.match.alertname
            for source in policy.match.sources or (ANY_SOURCE,):
                if isinstance(name, str):
                    self._exact[(source, name)].append(compiled)
                else:
                    self._scan[source].append(compiled)

    def candidates(self, alert: Alert) -> list[_Compiled]:
        """The only policies that can match this alert (before their conditions are checked)."""
        found: list[_Compiled] = []
        for source in (alert.source, ANY_SOURCE):
            found += self._exact.get((source, alert.name), ())
            found += self._scan.get(source, ())
        return found

    def match(self, alert: Alert) -> list[Match]:
        hits = [c for c in self.candidates(alert) if c.accepts(alert)]
        hits.sort(key=lambda c: c.order)
        return [Match(c.policy, alert) for c in hits]

    def by_name(self, name: str) -> Policy | None:
        return next((p for p in self.policies if p.name == name), None)

    def __len__(self) -> int:
        return len(self.policies)


def incident_severity(matches: Sequence[Match], alert: Alert, default: Severity = Severity.P4) -> Severity:
    """The highest of the matched policies' severities and the source's own (a notify-only P2
    policy must not lower a GuardDuty-high incident), else the default."""
    own = [alert.severity_hint] if alert.severity_hint else []
    found = Severity.highest([m.policy.severity for m in matches] + own)
    return found or default
