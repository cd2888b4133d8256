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
"""

from __future__ import annotations

import fnmatch
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from remediator.model import AlertStatus, Severity
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


class ActionStep(Strict):
    type: str = Field(min_length=1)
    params: dict[str, Any] = {}
    guardrails: StepGuardrails = StepGuardrails()


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
        return self


class PolicyFile(Strict):
    """A file holds one policy, or several under `policies:`."""

    policies: list[Policy]
