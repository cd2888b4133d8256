"""One typed Settings object: a YAML file plus `REMEDIATOR_*` environment overrides.

Nested keys use a double underscore in the environment (`REMEDIATOR_LISTEN__PORT=9000`); values
are read as YAML scalars, so `true`, `8080` and `[a, b]` mean what they look like. Validation
happens once, at start, and reports every problem at once with its key. Secrets are `SecretStr`:
they print as `**********` and are never logged.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from remediator.errors import SettingsError
from remediator.model import Severity
from remediator.sources.cloudwatch import InsufficientData
from remediator.sources.sns_certs import TrustPolicy
from remediator.sources.sns_message import parse_topic_arn

ENV_PREFIX = "REMEDIATOR_"
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> timedelta:
    """`90s`, `15m`, `1h30m`, `2d`, a number of seconds, or a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a duration like 30s, 15m, 1h or 2d")
    text, total, number = value.strip().lower(), 0.0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text.startswith("ms", i) else ch
        if unit not in DURATION_UNITS or not number:
            raise ValueError(f"{value!r} is not a duration like 30s, 15m, 1h or 2d")
        total += float(number) * DURATION_UNITS[unit]
        number, i = "", i + len(unit)
    if number:
        raise ValueError(f"{value!r} lacks a unit (s, m, h, d)")
    return timedelta(seconds=total)


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


class Listen(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class StoreSettings(Section):
    """Where alerts, incidents, executions, approvals and audit live."""

    url: str = "sqlite:///var/remediator.db"
    pool_min: int = Field(2, ge=1)
    pool_max: int = Field(10, ge=1)
    # SQLite: NORMAL is durable against a crash of the process (WAL); FULL also against power loss.
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    batch_max: int = Field(512, ge=1, description="writes committed together at most")
    # How long a write waits for a lock held by another process before the store reports itself unavailable.
    sqlite_busy_timeout: Duration = timedelta(seconds=2)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:// or postgresql://")
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite://")

    @property
    def sqlite_path(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///").removeprefix("sqlite://"))


class CoordinationSettings(Section):
    """Rate-limit windows, cooldowns, leases and the kill switch: in process, or Redis for replicas."""

    url: str = "memory://"
    key_prefix: str = "remediator:"
    timeout: Duration = timedelta(seconds=0.5)
    lease_ttl: Duration = timedelta(minutes=10)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("memory://", "redis://", "rediss://", "unix://")):
            raise ValueError("must be memory:// or a redis:// URL")
        return url


class EngineSettings(Section):
    workers: int = Field(16, ge=1, le=1024)
    batch_size: int = Field(64, ge=1, le=10_000, description="alerts a worker takes off the queue at once")
    queue_size: int = Field(10_000, ge=1)
    retry_attempts: int = Field(3, ge=1, le=20)
    retry_deadline: Duration = timedelta(minutes=2)
    retry_initial_wait: Duration = timedelta(seconds=0.5)
    alert_lease: Duration = timedelta(minutes=2)
    timer_interval: Duration = timedelta(seconds=1)
    # How often the engine looks for alerts recorded by intake processes (or left by others).
    backlog_poll: Duration = timedelta(milliseconds=100)
    action_timeout: Duration = timedelta(minutes=5)
    stop_timeout: Duration = timedelta(seconds=25)


class SeverityTarget(Section):
    """The runbook's targets for one severity: first response, and recovery."""

    respond: Duration | Literal["next_business_day"]
    recover: Duration


class EscalationStep(Section):
    """Once an incident has gone `after` without recovering, tell these contacts."""

    after: Duration
    contacts: list[str] = Field(min_length=1)


# The runbook's defaults; settings may replace any severity's entry and keep the others.
DEFAULT_TARGETS: dict[Severity, SeverityTarget] = {
    Severity.P1: SeverityTarget(respond=timedelta(minutes=15), recover=timedelta(hours=1)),
    Severity.P2: SeverityTarget(respond=timedelta(minutes=30), recover=timedelta(hours=4)),
    Severity.P3: SeverityTarget(respond=timedelta(hours=2), recover=timedelta(hours=24)),
    Severity.P4: SeverityTarget(respond="next_business_day", recover=timedelta(weeks=1)),
}
DEFAULT_ESCALATION: dict[Severity, list[EscalationStep]] = {
    Severity.P1: [
        EscalationStep(after=timedelta(minutes=15), contacts=["team_lead", "head_of_department"]),
        EscalationStep(after=timedelta(minutes=30), contacts=["cto"]),
        EscalationStep(after=timedelta(hours=1), contacts=["ceo"]),
        EscalationStep(after=timedelta(hours=2), contacts=["external_support"]),
    ],
    Severity.P2: [
        EscalationStep(after=timedelta(minutes=30), contacts=["team_lead"]),
        EscalationStep(after=timedelta(hours=2), contacts=["head_of_department"]),
    ],
    Severity.P3: [EscalationStep(after=timedelta(hours=4), contacts=["team_lead"])],
    Severity.P4: [],
}


class IncidentSettings(Section):
    """Severity targets, the escalation matrix and who each contact is (a notify target)."""

    targets: dict[Severity, SeverityTarget] = DEFAULT_TARGETS
    escalation: dict[Severity, list[EscalationStep]] = DEFAULT_ESCALATION
    contacts: dict[str, str] = Field({}, description="contact name → notify target name")
    notify: str = Field("", description="notify target for contacts without one of their own")
    timezone: str = Field("UTC", description="where business days are counted (P4's respond target)")

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


class BasicCredential(Section):
    username: str = Field(min_length=1)
    password: SecretStr


class AlertmanagerSettings(Section):
    path: str = "/webhooks/alertmanager"
    bearer_tokens: list[SecretStr] = []
    basic_auth: list[BasicCredential] = []
    allow_anonymous_loopback: bool = False

    @field_validator("bearer_tokens", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class ProtectedTargets(Section):
    """Targets an action type (glob) must never touch: CIDRs for addresses, globs for names."""

    action: str = "*"
    targets: list[str] = Field(min_length=1)
    reason: str = ""


class WindowLimit(Section):
    max: int = Field(ge=0)
    window: Duration


class GuardrailSettings(Section):
    kill_switch: bool = False
    budget: WindowLimit = WindowLimit(max=30, window=timedelta(hours=1))
    flap: WindowLimit = WindowLimit(max=6, window=timedelta(minutes=30))
    default_cooldown: Duration = timedelta(minutes=10)
    protected: list[ProtectedTargets] = []
    hold_severities: list[Severity] = [Severity.P1]
    # Coordination calls that fail deny the action; these many in a row mark /readyz degraded.
    coordination_failure_threshold: int = Field(3, ge=1)


class NotifyTarget(Section):
    """A place notifications are posted to; policies name it, they never carry the URL."""

    url: str
    format: Literal["json", "slack"] = "json"
    timeout: Duration = timedelta(seconds=5)
    headers: dict[str, SecretStr] = {}


class ApiToken(Section):
    """A person's API token, stored as its SHA-256 hex digest (never the token itself)."""

    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    roles: list[Literal["viewer", "approver", "admin"]] = Field(["viewer"], min_length=1)


class ApiSettings(Section):
    tokens: list[ApiToken] = []
    # With no tokens configured, loopback clients may read (never write) without one.
    anonymous_loopback_read: bool = True
    # Signs the /approvals page's session cookies. Unset: a random key per process, so sessions
    # end with a restart and are not shared between replicas (set it when running several).
    session_secret: SecretStr | None = None
    session_ttl: Duration = timedelta(hours=8)

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value


class ApprovalSettings(Section):
    """How a held request waits for people: how many must approve, for how long, who is told."""

    approvers: int = Field(1, ge=1, le=5, description="distinct approvers an approval needs")
    approvers_by_severity: dict[Severity, int] = Field({}, description="e.g. {P1: 2}; others use `approvers`")
    expire_after: Duration = timedelta(minutes=30)
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


def _default_never_block() -> list[IPvAnyNetwork]:
    # Our own side of every connection: loopback, private and link-local ranges, carrier NAT.
    ranges = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10",
              "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]
    return [ipaddress.ip_network(r) for r in ranges]


class WafSettings(Section):
    """Limits of `waf.block_ip`; `never_block` is re-checked inside the action after the guardrails."""

    never_block: list[IPvAnyNetwork] = Field(default_factory=_default_never_block)
    max_blocks_per_hour: int = Field(30, ge=0, description="addresses added per IP set per hour")
    max_set_size: int = Field(1000, ge=1, le=10_000, description="addresses an IP set may hold")
    lock_retries: int = Field(3, ge=0, le=10, description="re-reads after WAFOptimisticLockException")
    max_duration: Duration = timedelta(days=7)


class EvidenceSettings(Section):
    """Where `s3.preserve_evidence` copies to, and how much one run may copy."""

    bucket: str = ""  # empty: the action refuses (a forensics bucket is never taken from an alert)
    key_prefix: str = "incidents/"
    max_objects: int = Field(1000, ge=1)
    max_bytes: int = Field(5 * 1024**3, ge=1)


class AwsSettings(Section):
    region: str = "us-east-1"
    endpoint_url: str | None = None
    max_attempts: int = Field(4, ge=1, le=10)
    connect_timeout: Duration = timedelta(seconds=3)
    read_timeout: Duration = timedelta(seconds=10)
    # One AWS call, botocore's own retries included; past it the call is abandoned as a timeout.
    call_timeout: Duration = timedelta(seconds=60)
    waf: WafSettings = WafSettings()
    evidence: EvidenceSettings = EvidenceSettings()


def _topic_arn(arn: str) -> str:
    parse_topic_arn(arn)  # a typo fails the start, naming its key, instead of refusing that topic quietly
    return arn


TopicArnSetting = Annotated[str, AfterValidator(_topic_arn)]


class SnsRawDelivery(Section):
    """A path for one topic's raw message delivery: no signature, so a shared secret instead.

    SNS sends the secret as basic auth from the subscription URL (`https://sns:<secret>@host/path`);
    other senders may use `Authorization: Bearer <secret>`.
    """

    path: str = Field(pattern=r"^/")
    topic_arn: TopicArnSetting
    secret: SecretStr
    username: str = Field("sns", min_length=1)

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (it is the only proof of origin)")
        return secret


class SnsSettings(Section):
    """The SNS endpoint: which topics it trusts, how it confirms subscriptions, where certificates come from."""

    path: str = Field("/webhooks/sns", pattern=r"^/")
    topics: list[TopicArnSetting] = []  # the allow-list; messages of any other topic get 403
    confirm_method: Literal["ConfirmSubscription", "SubscribeURL"] = "ConfirmSubscription"
    confirm_timeout: Duration = timedelta(seconds=5)
    insufficient_data: InsufficientData = InsufficientData.RECORD
    # SNS keeps the Timestamp of the first attempt and retries for up to an hour, plus backlog (FORMATS §2.5).
    max_age: Duration = timedelta(hours=2)
    certificate_timeout: Duration = timedelta(seconds=3)
    ca_files: list[Path] = []  # empty: the public SNS issuers (by name), over verified TLS
    mirror_url: str | None = None  # tests and air-gapped setups: fetch SNS URLs' paths from here
    raw_delivery: list[SnsRawDelivery] = []

    @field_validator("ca_files")
    @classmethod
    def _readable_ca_files(cls, files: list[Path]) -> list[Path]:
        for path in files:
            try:
                TrustPolicy.from_files([path])  # read again when the app starts
            except OSError as exc:
                raise ValueError(f"{path}: cannot read ({exc.strerror})") from None
        return files

    @model_validator(mode="after")
    def _mirror_needs_a_ca(self) -> SnsSettings:
        # Issuer names prove nothing about a certificate fetched from a mirror: only TLS to the
        # real SNS host does. Over a network a mirror is therefore trusted through ca_files only.
        if self.mirror_url is not None and not self.ca_files and not _is_loopback_url(self.mirror_url):
            raise ValueError("mirror_url off loopback needs ca_files (the CA that issued the mirrored certificates)")
        return self

    @property
    def allowed_topics(self) -> frozenset[str]:
        """Topics whose signed messages are accepted: the allow-list and every raw-delivery topic."""
        return frozenset(self.topics) | {raw.topic_arn for raw in self.raw_delivery}


def _is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or is_loopback(host)


class IntakeSettings(Section):
    """Webhook intake in processes of its own, so that acknowledgements stay fast whatever the
    engine is doing, and intake and engine each get a core. 0: everything in one process."""

    processes: int = Field(1, ge=0, le=16)


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"


class Settings(Section):
    """Everything the daemon reads at start."""

    mode: Mode = Mode.DRY_RUN
    listen: Listen = Listen()
    public_url: str = ""
    policies_dir: Path = Path("policies")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    store: StoreSettings = StoreSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    engine: EngineSettings = EngineSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    notify: dict[str, NotifyTarget] = {}
    api: ApiSettings = ApiSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    incidents: IncidentSettings = IncidentSettings()
    aws: AwsSettings = AwsSettings()
    sns: SnsSettings = SnsSettings()
    intake: IntakeSettings = IntakeSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.store.pool_min > self.store.pool_max:
            raise ValueError("store.pool_min must not exceed store.pool_max")
        paths = [self.alertmanager.path, self.sns.path, *(raw.path for raw in self.sns.raw_delivery)]
        if len(set(paths)) != len(paths):
            raise ValueError("alertmanager.path, sns.path and every sns.raw_delivery path must differ")
        named = {"approvals.notify": self.approvals.notify, "incidents.notify": self.incidents.notify}
        named.update({f"incidents.contacts.{c}": t for c, t in self.incidents.contacts.items()})
        unknown = [f"{key}: no notify target named {target!r}" for key, target in named.items()
                   if target and target not in self.notify]
        if unknown:
            raise ValueError("; ".join(unknown))
        return self

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.listen.host}:{self.listen.port}"


def token_digest(token: str) -> str:
    """The form API tokens are stored in (`remediator token hash` prints it)."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    tree: dict[str, Any] = {}
    problems: list[str] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == f"{ENV_PREFIX}CONFIG":
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                problems.append(f"{name}: conflicts with another REMEDIATOR_ variable")
                break
            node = child
        else:
            node[path[-1]] = value
    return tree, problems


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{key}: {message}"


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the file (if any) and the environment; raise SettingsError listing every problem."""
    environ = os.environ if environ is None else environ
    if path is None and environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(environ[f"{ENV_PREFIX}CONFIG"])
    data: dict[str, Any] = {}
    problems: list[str] = []
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError([f"{path}: cannot read ({exc.strerror})"]) from exc
        except yaml.YAMLError as exc:
            raise SettingsError([f"{path}: not valid YAML ({exc})"]) from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise SettingsError([f"{path}: the top level must be a mapping of keys"])
        data = loaded or {}
    overrides, problems = _env_overrides(environ)
    try:
        settings = Settings.model_validate(_merge(data, overrides))
    except ValidationError as exc:
        problems += [_describe(e) for e in exc.errors()]
        raise SettingsError(problems) from None
    if problems:
        raise SettingsError(problems)
    return settings
