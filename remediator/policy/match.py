"""Which policies an alert matches: pure, no I/O, indexed so that unrelated policies cost nothing.

Within the alert's source (and among the policies for any source), a policy is found by one of:
- its exact `alertname`: a dictionary lookup;
- with no name condition, its rarest plain label condition: a lookup per label of the alert;
- its glob or regex name, else its first label regex or set: the policies whose pattern accepts
  a value are worked out once per (source, field, value) and remembered (a bounded memo: names
  and label values repeat; a sender who invents values only makes the memo start over);
- otherwise (only absence conditions, or none) it is tried for every alert.
A candidate is then checked against all of its conditions. So matching costs what the policies
that could match cost, not what all of them do (`bench/policies.py` measures it).
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from remediator.model import Alert, AlertStatus, Severity
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

    statuses: frozenset[AlertStatus]

    def accepts(self, alert: Alert) -> bool:
        if alert.status not in self.statuses:
            return False
        if self.name_test is not None and not self.name_test(alert.name):
            return False
        labels = alert.labels
        return all(test(labels) for test in self.label_tests)


MEMO = 4096  # (source, name or label, value) triples remembered before the memo starts over
NAME = ""  # the field of a pattern on the alert's name (label keys are never empty)

ValueTest = Callable[[str], object]  # truthy: the value is accepted


def _plain_labels(policy: Policy) -> list[tuple[str, str]]:
    """The label conditions that are a plain value: the keys a nameless policy can be indexed by."""
    return [(k, v) for k, v in policy.match.labels.items() if isinstance(v, str)]


def _value_pattern(policy: Policy) -> tuple[str, ValueTest] | None:
    """The name pattern, else the first label regex or set: a test of one value the policy needs."""
    if policy.match.alertname is not None and not isinstance(policy.match.alertname, str):
        test = _name_test(policy)
        assert test is not None
        return NAME, test
    for key, condition in policy.match.labels.items():
        if isinstance(condition, LabelRegex):
            return key, re.compile(condition.regex).fullmatch
        if isinstance(condition, LabelIn):
            return key, frozenset(condition.in_).__contains__
    return None


class PolicyIndex:
    """The loaded policies, indexed for matching."""

    def __init__(self, policies: Iterable[Policy]) -> None:
        self.policies: tuple[Policy, ...] = tuple(p for p in policies if p.enabled)
        self._names = {p.name: p for p in reversed(self.policies)}  # the first of a name, as a scan finds it
        self._exact: dict[tuple[str, str], list[_Compiled]] = defaultdict(list)
        self._by_label: dict[tuple[str, str, str], list[_Compiled]] = defaultdict(list)
        self._patterns: dict[tuple[str, str], list[tuple[_Compiled, ValueTest]]] = defaultdict(list)
        self._scan: dict[str, list[_Compiled]] = defaultdict(list)
        self._memo: dict[tuple[str, str, str], tuple[_Compiled, ...]] = {}
        # A nameless policy is indexed by its rarest plain label (`namespace: AWS/RDS` is everyone's).
        shared = Counter(pair for p in self.policies if p.match.alertname is None for pair in _plain_labels(p))
        for order, policy in enumerate(self.policies):
            compiled = _Compiled(
                order, policy, _name_test(policy),
                tuple(_label_test(k, v) for k, v in policy.match.labels.items()),
                frozenset(s for s in AlertStatus if policy.match.accepts_status(s)),
            )
            name = policy.match.alertname
            label = min(_plain_labels(policy), key=shared.__getitem__, default=None)
            pattern = _value_pattern(policy)
            for source in policy.match.sources or (ANY_SOURCE,):
                if isinstance(name, str):
                    self._exact[(source, name)].append(compiled)
                elif name is None and label is not None:
                    self._by_label[(source, *label)].append(compiled)
                elif pattern is not None:
                    self._patterns[(source, pattern[0])].append((compiled, pattern[1]))
                else:
                    self._scan[source].append(compiled)
        self._label_sources = frozenset(k[0] for k in self._by_label) | {k[0] for k in self._patterns if k[1]}

    def _by_pattern(self, source: str, field: str, value: str) -> tuple[_Compiled, ...]:
        """The policies whose pattern on this field accepts the value: worked out once, then remembered."""
        key = (source, field, value)
        found = self._memo.get(key)
        if found is None:
            found = tuple(c for c, test in self._patterns.get((source, field), ()) if test(value))
            if len(self._memo) >= MEMO:
                self._memo.clear()
            self._memo[key] = found
        return found

    def candidates(self, alert: Alert) -> list[_Compiled]:
        """The only policies that can match this alert (before their conditions are checked)."""
        found: list[_Compiled] = []
        for source in (alert.source, ANY_SOURCE):
            found += self._exact.get((source, alert.name), ())
            if (source, NAME) in self._patterns:
                found += self._by_pattern(source, NAME, alert.name)
            if source in self._label_sources:
                for key, value in alert.labels.items():
                    found += self._by_label.get((source, key, value), ())
                    if (source, key) in self._patterns:
                        found += self._by_pattern(source, key, value)
            found += self._scan.get(source, ())
        return found

    def match(self, alert: Alert) -> list[Match]:
        hits = [c for c in self.candidates(alert) if c.accepts(alert)]
        hits.sort(key=lambda c: c.order)
        return [Match(c.policy, alert) for c in hits]

    def by_name(self, name: str) -> Policy | None:
        return self._names.get(name)

    def __len__(self) -> int:
        return len(self.policies)


def incident_severity(matches: Sequence[Match], alert: Alert, default: Severity = Severity.P4) -> Severity:
    """The highest of the matched policies' severities and the source's own (a notify-only P2
    policy must not lower a GuardDuty-high incident), else the default."""
    own = [alert.severity_hint] if alert.severity_hint else []
    found = Severity.highest([m.policy.severity for m in matches] + own)
    return found or default
