"""The policy schema: what a YAML policy may say, and nothing else (extra=forbid everywhere).

```yaml
name: api-5xx-redeploy
description: The API answers 5xx: redeploy it, then page if that did not help.
severity: P2
match:
  source: alertmanager
  alertname: {glob: "Api*5xx*"}
  labels:
    env: prod
    service: {in: [erp-api, erp-web]}
    maintenance: {absent: true}
  status: firing
actions:
  - type: ecs.force_new_deployment
    params: {cluster: erp-prod, service: "{labels.service}"}
    guardrails: {cooldown: 30m, rate_limit: {max: 3, window: 1h}}
verify: {after: 10m}
```

Steps may be ordered instead (`when`, `after`, `{previous.*}`; not together with `verify`):

```yaml
actions:
  - {type: waf.block_ip, name: block, params: {...}}
  - {type: notify.webhook, when: succeeded, params: {to: security, title: "Blocked {labels.source_ip}"}}
  - {type: notify.webhook, after: block, when: failed, params: {to: security, text: "{previous.reason}"}}
```
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from remediator.model import AlertStatus, Severity
from remediator.policy.template import uses_previous
from remediator.settings import Duration, WindowLimit

POLICY_NAME = r"^[a-z0-9][a-z0-9_.-]{0,79}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None


class GlobName(Strict):
    glob: str = Field(min_length=1)

    def matches(self, value: str) -> bool:
        return fnmatch.fnmatchcase(value, self.glob)


class RegexName(Strict):
    regex: str = Field(min_length=1)

    @field_validator("regex")
    @classmethod
    def _valid(cls, value: str) -> str:
        _compile(value)
        return value

    def matches(self, value: str) -> bool:
        return _compile(self.regex).fullmatch(value) is not None


NameMatcher = str | GlobName | RegexName


class LabelRegex(Strict):
    regex: str

    @field_validator("regex")
    @classmethod
    def _valid(cls, value: str) -> str:
        _compile(value)
        return value


class LabelIn(Strict):
    in_: list[str] = Field(alias="in", min_length=1)


class LabelAbsent(Strict):
    absent: Literal[True]


LabelCondition = str | LabelRegex | LabelIn | LabelAbsent


class MatchSpec(Strict):
    """Which alerts a policy is about. Every given condition must hold."""

    source: str | list[str] | None = None
    alertname: NameMatcher | None = None
    labels: dict[str, LabelCondition] = {}
    status: Literal["firing", "resolved", "any"] = "firing"

    @property
    def sources(self) -> tuple[str, ...]:
        if self.source is None:
            return ()
        return (self.source,) if isinstance(self.source, str) else tuple(self.source)

    def accepts_status(self, status: AlertStatus) -> bool:
        return self.status in ("any", status.value)


class StepGuardrails(Strict):
    """Per-action limits; the global ones (budget, kill switch, flap, protected targets) always apply too."""

    cooldown: Duration | None = None
    rate_limit: WindowLimit | None = None
    blast_radius: WindowLimit | None = None
    require_approval: bool = False
    dry_run: bool = False


StepCondition = Literal["succeeded", "failed", "always"]
STEP_NAME = r"^[a-z0-9][a-z0-9_-]{0,39}$"


class ActionStep(Strict):
    """One step. Without `when` it starts at once, beside the policy's other such steps; with
    `when` it waits for the step before it (or the one `after` names) and runs only if that
    step's outcome meets the condition (engine/sequence.py says what each outcome counts as)."""

    type: str = Field(min_length=1)
    name: Annotated[str, Field(pattern=STEP_NAME)] | None = None
    params: dict[str, Any] = {}
    guardrails: StepGuardrails = StepGuardrails()
    when: StepCondition | None = None
    after: str | None = None  # the name of an earlier step; without it, the step just before


class VerifySpec(Strict):
    """After an action, wait `after`, then check recovery; not recovered → the next step or escalation."""

    after: Duration
    timeout: Duration | None = None


class Policy(Strict):
    name: Annotated[str, Field(pattern=POLICY_NAME)]
    description: str = ""
    severity: Severity
    enabled: bool = True
    match: MatchSpec
    actions: list[ActionStep] = Field(min_length=1)
    verify: VerifySpec | None = None

    @model_validator(mode="after")
    def _verify_needs_steps(self) -> Policy:
        if self.verify and self.verify.timeout and self.verify.timeout < self.verify.after:
            raise ValueError("verify.timeout must not be shorter than verify.after")
        problems = self._order_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def depends_on(self, index: int) -> int | None:
        """The step whose outcome step `index` waits for; None when it starts at once."""
        step = self.actions[index]
        if step.when is None:
            return None
        if step.after is None:
            return index - 1
        return next(i for i, s in enumerate(self.actions[:index]) if s.name == step.after)

    def dependants(self, index: int) -> list[int]:
        """The steps that wait for step `index`, in policy order."""
        return [i for i in range(index + 1, len(self.actions)) if self.depends_on(i) == index]

    @property
    def first_steps(self) -> list[int]:
        """The steps that start at once: those without `when` (only the first when the policy verifies)."""
        if self.verify is not None:
            return [0]
        return [i for i, step in enumerate(self.actions) if step.when is None]

    def _order_problems(self) -> list[str]:
        """What is wrong with the steps' `name`, `when` and `after` (each names its step)."""
        problems: list[str] = []
        names: dict[str, int] = {}
        for index, step in enumerate(self.actions):
            where = f"actions[{index}] ({step.type})"
            if step.name is not None and step.name in names:
                problems.append(f"{where}.name: {step.name!r} is already the name of actions[{names[step.name]}]")
            earlier = dict(names)
            if step.name is not None:
                names.setdefault(step.name, index)
            if step.after is not None and step.when is None:
                problems.append(f"{where}.after: needs `when` (the outcome of {step.after!r} it waits for)")
            elif step.after is not None and step.after not in earlier:
                problems.append(f"{where}.after: no earlier step is named {step.after!r}"
                                f" (earlier names: {', '.join(earlier) or 'none'})")
            if step.when is not None and index == 0 and step.after is None:
                problems.append(f"{where}.when: the first step has no previous step to wait for")
            if step.when is not None and self.verify is not None:
                problems.append(f"{where}.when: cannot be combined with `verify` (a verifying policy runs its "
                                "next step when the previous one did not help)")
            if step.when is None and uses_previous(step.params):
                problems.append(f"{where}.params: {{previous.*}} needs `when` (a step that starts at once "
                                "has no previous step)")
        return problems


class PolicyFile(Strict):
    """A file holds one policy, or several under `policies:`."""

    policies: list[Policy]
