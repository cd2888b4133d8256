"""Settings of what people do and are told: incidents (targets, escalation), approvals, API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from remediator.model import Severity
from remediator.settings.base import Duration, PositiveDuration, Section, WindowLimit


class SeverityTarget(Section):
    """The runbook's targets for one severity: first response, and recovery."""

    respond: PositiveDuration | Literal["next_business_day"]
    recover: PositiveDuration


class EscalationStep(Section):
    """Once an incident has gone `after` without recovering, tell these contacts.

    `reminder`: the contacts heard already at an earlier step; this one reminds them (the
    runbook's "2시간 CTO" of P2). `note`: what the step asks of them, said in the message.
    """

    after: Duration
    contacts: list[str] = Field(min_length=1)
    reminder: bool = False
    note: str = Field("", max_length=200)


# The runbook's defaults (its §2.1 targets and §3.3 matrix); settings may replace any severity's
# entry and keep the others. The matrix reads "A → B" at a time as "A escalates to B": B is the
# contact told then. Role keys are the deployed ones (`head_of_department` is 본부장).
DEFAULT_TARGETS: dict[Severity, SeverityTarget] = {
    Severity.P1: SeverityTarget(respond=timedelta(minutes=15), recover=timedelta(hours=1)),
    Severity.P2: SeverityTarget(respond=timedelta(minutes=30), recover=timedelta(hours=4)),
    Severity.P3: SeverityTarget(respond=timedelta(hours=2), recover=timedelta(hours=24)),
    Severity.P4: SeverityTarget(respond="next_business_day", recover=timedelta(weeks=1)),
}
DEFAULT_ESCALATION: dict[Severity, list[EscalationStep]] = {
    Severity.P1: [
        EscalationStep(after=timedelta(minutes=15), contacts=["head_of_department"]),
        EscalationStep(after=timedelta(minutes=30), contacts=["cto"]),
        EscalationStep(after=timedelta(hours=1), contacts=["ceo"]),
        EscalationStep(after=timedelta(hours=2), contacts=["external_support"],
                       note="review external support (AWS Support, vendors)"),
    ],
    Severity.P2: [
        EscalationStep(after=timedelta(minutes=15), contacts=["team_lead"]),
        EscalationStep(after=timedelta(minutes=30), contacts=["head_of_department"]),
        EscalationStep(after=timedelta(hours=1), contacts=["cto"]),
        EscalationStep(after=timedelta(hours=2), contacts=["cto"], reminder=True),
    ],
    Severity.P3: [
        EscalationStep(after=timedelta(minutes=30), contacts=["team_lead"]),
        EscalationStep(after=timedelta(hours=1), contacts=["head_of_department"]),
        EscalationStep(after=timedelta(hours=2), contacts=["head_of_department"], reminder=True),
    ],
    Severity.P4: [],
}

# The runbook's people (§1.3 contacts, §3 organisation): policies and the matrix name these
# roles; `incidents.contacts` maps each to a notify target. Others may be added in settings.
CONTACT_ROLES: dict[str, str] = {
    "infra_lead": "인프라 책임자 (infrastructure lead)",
    "dba": "DBA",
    "security": "보안 담당 (security)",
    "dev_lead": "개발 리드 (development lead)",
    "aws_support": "AWS Support",
    "csirt": "CSIRT",
    "team_lead": "팀장 (team lead)",
    "head_of_department": "본부장 (head of department)",
    "cto": "CTO",
    "ceo": "CEO",
    "external_support": "외부 지원 (external support)",
    "executives": "경영진 (executives: the P1/P2 executive report)",
}
# The incident's own roles (§3.1, §3.2), assigned to people on each incident.
INCIDENT_ROLES: dict[str, str] = {
    "incident_commander": "인시던트 커맨더 (incident commander)",
    "tech_lead": "기술 리드 (tech lead)",
    "comms_lead": "커뮤니케이션 리드 (comms lead)",
    "scribe": "기록 담당 (scribe)",
}


class SlackSettings(Section):
    """Slack's Web API, for the incident channel of the runbook's declaration checklist (§4.2)."""

    bot_token: SecretStr | None = Field(None, description="a bot token with channels:manage; unset: no channel "
                                        "is created, its name is still on the incident")
    api_url: str = Field("https://slack.com/api", pattern=r"^https?://", description="Slack's Web API (tests: a fake)")
    private: bool = Field(False, description="create private channels")
    timeout: PositiveDuration = timedelta(seconds=10)


class IncidentDeadline(Section):
    """A deadline counted from the incident's opening (e.g. the runbook's §8.2: report a suspected
    leak to the privacy regulator within 72 hours). Reminders go to `contacts` at each of
    `remind_at` (after the opening) until a person marks it met; at `within` unmet, the
    contacts and the escalation matrix are told. Matching one of `policies` starts it; a
    person can start it through the API as well."""

    description: str = Field(min_length=1, max_length=200)
    within: PositiveDuration
    remind_at: list[PositiveDuration] = []
    contacts: list[str] = Field(min_length=1)
    policies: list[str] = Field([], description="policy names whose match starts this deadline")

    @model_validator(mode="after")
    def _reminders_before_the_deadline(self) -> IncidentDeadline:
        if any(r >= self.within for r in self.remind_at) or self.remind_at != sorted(set(self.remind_at)):
            raise ValueError("remind_at: increasing times, each before `within`")
        return self


DEFAULT_DEADLINES: dict[str, IncidentDeadline] = {
    "privacy_regulator": IncidentDeadline(
        description="개인정보보호위원회 신고 (notify the privacy regulator; runbook §8.2: within 72 h)",
        within=timedelta(hours=72), remind_at=[timedelta(hours=24), timedelta(hours=48), timedelta(hours=66)],
        contacts=["security", "csirt"]),
}


class IncidentSettings(Section):
    """Severity targets, the escalation matrix and who each contact is (a notify target)."""

    targets: dict[Severity, SeverityTarget] = DEFAULT_TARGETS
    escalation: dict[Severity, list[EscalationStep]] = DEFAULT_ESCALATION
    contacts: dict[str, str] = Field({}, description="contact name → notify target name")
    notify: str = Field("", description="notify target for contacts without one of their own")
    timezone: str = Field("UTC", description="where business days are counted (P4's respond target), and the "
                          "zone of every time in postmortems, reports and channel names")
    slack: SlackSettings = SlackSettings()
    deadlines: dict[str, IncidentDeadline] = DEFAULT_DEADLINES

    @field_validator("deadlines")
    @classmethod
    def _named_deadlines(cls, value: dict[str, IncidentDeadline]) -> dict[str, IncidentDeadline]:
        for name in value:
            if not name.replace("_", "").isalnum() or not name.islower():
                raise ValueError(f"{name!r}: a deadline's name is lowercase letters, digits and underscores")
        return {**DEFAULT_DEADLINES, **value}

    @field_validator("targets")
    @classmethod
    def _every_target(cls, value: dict[Severity, SeverityTarget]) -> dict[Severity, SeverityTarget]:
        return {**DEFAULT_TARGETS, **value}

    @field_validator("escalation")
    @classmethod
    def _every_matrix_row(cls, value: dict[Severity, list[EscalationStep]]) -> dict[Severity, list[EscalationStep]]:
        for severity, steps in value.items():
            times = [step.after for step in steps]
            if times != sorted(times) or len(set(times)) != len(times):
                raise ValueError(f"{severity.value}: steps must be in strictly increasing order of `after`")
        return {**DEFAULT_ESCALATION, **value}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. UTC, Europe/Berlin)") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class ApiToken(Section):
    """A person's API token, stored as its SHA-256 hex digest (never the token itself)."""

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: list[Literal["viewer", "approver", "admin"]] = Field(["viewer"], min_length=1)


class ApiSettings(Section):
    tokens: list[ApiToken] = []
    # With no tokens configured, loopback clients may read (never write) without one.
    anonymous_loopback_read: bool = True
    # Signs the console's session cookies. Unset: a random key per process, so sessions
    # end with a restart and are not shared between replicas (set it when running several).
    session_secret: SecretStr | None = None
    session_ttl: PositiveDuration = timedelta(hours=8)
    # Failed console sign-ins allowed per client address and per token name within the window.
    sign_in_failures: WindowLimit = WindowLimit(max=5, window=timedelta(minutes=1))

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @field_validator("sign_in_failures")
    @classmethod
    def _someone_may_sign_in(cls, value: WindowLimit) -> WindowLimit:
        if value.max < 1:
            raise ValueError("max must be at least 1: with 0 nobody could ever sign in")
        return value


class ApprovalSettings(Section):
    """How a held request waits for people: how many must approve, for how long, who is told."""

    approvers: int = Field(1, ge=1, le=5, description="distinct approvers an approval needs")
    approvers_by_severity: dict[Severity, int] = Field({}, description="e.g. {P1: 2}; others use `approvers`")
    expire_after: PositiveDuration = timedelta(minutes=30)
    remind_before: Duration = timedelta(minutes=10)
    notify: str = Field("", description="notify target told of new, due and expired approvals")

    @field_validator("approvers_by_severity")
    @classmethod
    def _sane_counts(cls, value: dict[Severity, int]) -> dict[Severity, int]:
        for severity, count in value.items():
            if not 1 <= count <= 5:
                raise ValueError(f"{severity.value}: between 1 and 5 approvers")
        return value

    @model_validator(mode="after")
    def _reminder_before_expiry(self) -> ApprovalSettings:
        if self.remind_before >= self.expire_after:
            raise ValueError("approvals.remind_before must be shorter than approvals.expire_after")
        return self

    def required_for(self, severity: Severity) -> int:
        return self.approvers_by_severity.get(severity, self.approvers)


