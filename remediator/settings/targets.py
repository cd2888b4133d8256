"""The databases and caches the postgres.* and redis.* actions may touch, by name."""

from __future__ import annotations

from datetime import timedelta

from pydantic import (
    Field,
    SecretStr,
    model_validator,
)

from remediator.settings.base import PositiveDuration, Section
from remediator.settings.reports import NamedReport, ReportName


class PostgresTarget(Section):
    """A PostgreSQL database the postgres.* actions may act on; policies name it, never carry the DSN."""

    dsn_env: str = Field("", pattern=r"^([A-Z_][A-Z0-9_]*)?$", description="environment variable holding the DSN")
    dsn: SecretStr | None = None  # in the settings file instead (tests, local use)
    statement_timeout: PositiveDuration = timedelta(seconds=5)
    connect_timeout: PositiveDuration = timedelta(seconds=5)
    pool_max: int = Field(2, ge=1, le=10)
    # Sessions of these users / application_names are never signalled, whatever a policy says.
    protected_users: list[str] = []
    protected_applications: list[str] = []
    # Named read-only queries `postgres.report` runs (the SQL is here, never in a policy or an alert).
    reports: dict[ReportName, NamedReport] = {}

    @model_validator(mode="after")
    def _one_source(self) -> PostgresTarget:
        if not self.dsn_env and self.dsn is None:
            raise ValueError("give dsn_env (preferred) or dsn")
        return self


class RedisTarget(Section):
    """A Redis the redis.* actions may act on; policies name it, never carry the URL."""

    url_env: str = Field("", pattern=r"^([A-Z_][A-Z0-9_]*)?$", description="environment variable holding the URL")
    url: SecretStr | None = None
    timeout: PositiveDuration = timedelta(seconds=2)

    @model_validator(mode="after")
    def _one_source(self) -> RedisTarget:
        if not self.url_env and self.url is None:
            raise ValueError("give url_env (preferred) or url")
        return self


class TargetSettings(Section):
    """Databases and caches actions may touch, by name."""

    postgres: dict[str, PostgresTarget] = {}
    redis: dict[str, RedisTarget] = {}


