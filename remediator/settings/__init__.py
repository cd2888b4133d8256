"""One typed Settings object: a YAML file plus `REMEDIATOR_*` environment overrides.

Nested keys use a double underscore in the environment (`REMEDIATOR_LISTEN__PORT=9000`); values
are read as YAML scalars, so `true`, `8080` and `[a, b]` mean what they look like. Validation
happens once, at start, and reports every problem at once with its key. Secrets are `SecretStr`:
they print as `**********` and are never logged.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from datetime import timedelta, tzinfo
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from remediator.errors import SettingsError
from remediator.model import Severity
from remediator.settings.aws import (
    AwsSettings,
    ElastiCacheSettings,
    EvidenceSettings,
    SnsRawDelivery,
    SnsSettings,
    WafSettings,
)
from remediator.settings.base import (
    IDENTIFIER_RE,
    Duration,
    PositiveDuration,
    Section,
    WindowLimit,
    is_loopback,
    parse_duration,
)
from remediator.settings.maintenance import MaintenanceWindow, check_names, time_zone
from remediator.settings.people import (
    DEFAULT_TARGETS,
    ApiSettings,
    ApiToken,
    ApprovalSettings,
    EscalationStep,
    IncidentSettings,
    SeverityTarget,
    SlackSettings,
)
from remediator.settings.reports import FreshnessCheck, NamedReport, ReportParam
from remediator.settings.retention import ArchiveSettings, RetentionSettings
from remediator.settings.targets import PostgresTarget, RedisTarget, TargetSettings

# Every section stays importable from here, wherever it is defined.
__all__ = [
    "DEFAULT_TARGETS",
    "ApiSettings",
    "ApiToken",
    "ApprovalSettings",
    "ArchiveSettings",
    "AwsSettings",
    "BasicCredential",
    "CircuitBreakerSettings",
    "CoordinationSettings",
    "Duration",
    "ElastiCacheSettings",
    "EngineSettings",
    "EscalationStep",
    "EvidenceSettings",
    "FreshnessCheck",
    "GuardrailSettings",
    "IncidentSettings",
    "IntakeSettings",
    "Listen",
    "LogSettings",
    "MaintenanceWindow",
    "Mode",
    "NamedReport",
    "NotifyTarget",
    "PositiveDuration",
    "PostgresTarget",
    "ProtectedTargets",
    "RedisTarget",
    "ReportParam",
    "RetentionSettings",
    "Section",
    "Settings",
    "SeverityTarget",
    "SlackSettings",
    "SnsRawDelivery",
    "SnsSettings",
    "StoreSettings",
    "TargetSettings",
    "WafSettings",
    "WindowLimit",
    "is_loopback",
    "load_settings",
    "parse_duration",
    "token_digest",
]

ENV_PREFIX = "REMEDIATOR_"
class Mode(StrEnum):
    DRY_RUN = "dry-run"
    ENFORCE = "enforce"


class Listen(Section):
    """A listening socket: `listen` (the public webhook listener) or `admin_listen` (API, console, metrics)."""

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
    sqlite_busy_timeout: PositiveDuration = timedelta(seconds=2)
    # PostgreSQL: the schema the daemon's tables live in (created if missing), and the bounds on
    # every connection attempt and every statement, so an unreachable server answers 503, not a hang.
    schema_name: str = Field("public", pattern=IDENTIFIER_RE)
    connect_timeout: PositiveDuration = timedelta(seconds=5)
    command_timeout: PositiveDuration = timedelta(seconds=10)
    # The whole acknowledgement path (queueing for the group commit, an intake process's hand-off
    # to the core, the commit): past it the sender gets 503 and retries, whatever is slow.
    ack_timeout: PositiveDuration = timedelta(seconds=3)

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
    timeout: PositiveDuration = timedelta(seconds=0.5)
    lease_ttl: PositiveDuration = timedelta(minutes=10)

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
    retry_deadline: PositiveDuration = timedelta(minutes=2)
    retry_initial_wait: Duration = timedelta(seconds=0.5)
    alert_lease: PositiveDuration = timedelta(minutes=2)
    timer_interval: PositiveDuration = timedelta(seconds=1)
    # How often the engine looks for alerts recorded by intake processes (or left by others).
    backlog_poll: PositiveDuration = timedelta(milliseconds=100)
    action_timeout: PositiveDuration = timedelta(minutes=5)
    stop_timeout: PositiveDuration = timedelta(seconds=25)
    # How often each replica reconciles requests of dead holders and decides orphaned claims again
    # (also at start): whatever a crash or a store outage interrupted settles within it.
    reconcile_interval: PositiveDuration = timedelta(seconds=5)


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


class CircuitBreakerSettings(Section):
    """N failures in a row of an action type on a target open its circuit for `cool_off` (0: off)."""

    failures: int = Field(3, ge=0, le=100)
    cool_off: PositiveDuration = timedelta(minutes=30)


class GuardrailSettings(Section):
    kill_switch: bool = False
    budget: WindowLimit = WindowLimit(max=30, window=timedelta(hours=1))
    flap: WindowLimit = WindowLimit(max=6, window=timedelta(minutes=30))
    default_cooldown: Duration = timedelta(minutes=10)
    protected: list[ProtectedTargets] = []
    hold_severities: list[Severity] = [Severity.P1]
    time_zone: str = "UTC"  # of maintenance windows without an offset (an IANA name)
    maintenance: list[MaintenanceWindow] = []
    circuit_breaker: CircuitBreakerSettings = CircuitBreakerSettings()

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @field_validator("maintenance")
    @classmethod
    def _unique_windows(cls, value: list[MaintenanceWindow]) -> list[MaintenanceWindow]:
        check_names(value)
        return value

    @property
    def zone(self) -> tzinfo:
        return time_zone(self.time_zone)


class NotifyTarget(Section):
    """A place notifications are posted to; policies name it, they never carry the URL."""

    url: str
    format: Literal["json", "slack"] = "json"
    timeout: PositiveDuration = timedelta(seconds=5)
    headers: dict[str, SecretStr] = {}


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
    # The API, the console, /metrics and /readyz: never on the public listener (0: any free port).
    admin_listen: Listen = Listen(port=8081)
    # The admin listener's external URL: the base of links in notifications.
    public_url: str = ""
    policies_dir: Path = Path("policies")
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    store: StoreSettings = StoreSettings()
    retention: RetentionSettings = RetentionSettings()
    coordination: CoordinationSettings = CoordinationSettings()
    engine: EngineSettings = EngineSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    guardrails: GuardrailSettings = GuardrailSettings()
    notify: dict[str, NotifyTarget] = {}
    api: ApiSettings = ApiSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    incidents: IncidentSettings = IncidentSettings()
    aws: AwsSettings = AwsSettings()
    targets: TargetSettings = TargetSettings()
    sns: SnsSettings = SnsSettings()
    intake: IntakeSettings = IntakeSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _coherent(self) -> Settings:
        if self.store.pool_min > self.store.pool_max:
            raise ValueError("store.pool_min must not exceed store.pool_max")
        if self.listen.port and self.listen.port == self.admin_listen.port:
            raise ValueError("admin_listen.port must differ from listen.port: the admin routes never share "
                             "the public listener")
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
        """Where people reach the admin listener (links in notifications point there)."""
        return self.public_url.rstrip("/") or f"http://{self.admin_listen.host}:{self.admin_listen.port}"


def token_digest(token: str) -> str:
    """The form API tokens are stored in (`remediator token hash` prints it)."""
    return hashlib.sha256(token.encode()).hexdigest()




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
