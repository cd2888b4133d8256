"""docs/settings.example.yaml is a working file: every setting, at its default but for a few marked examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel

from remediator.settings import PostgresTarget, Settings, load_settings
from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "settings.example.yaml"

# What the file deliberately sets away from the defaults (each marked "EXAMPLE VALUE" in it):
# the notify targets and the database the bundled policies name (with the runbook's reports), who
# hears of approvals and escalations, the evidence bucket of s3.preserve_evidence and the node types
# of elasticache.scale_node_type. Everything else must be the default.
NOTIFY = {"format": "slack", "timeout": "PT5S", "headers": {}}
REPORTS = {
    "patient-data-freshness": {
        "description": "newest patient and vital-sign rows",
        "sql": "SELECT (SELECT max(created_at) FROM patient.patients) AS newest_patient,\n"
               "       (SELECT max(recorded_at) FROM room.vitals) AS newest_vital\n",
        "max_rows": 1, "freshness": {"columns": ["newest_patient", "newest_vital"], "max_gap": "15m"}},
    "audit-bulk-reads": {
        "description": "SELECTs of more than min_rows rows within lookback",
        "sql": "SELECT * FROM audit.access_logs\n"
               "WHERE action = 'SELECT' AND affected_rows > $1 AND created_at > now() - $2::interval\n"
               "ORDER BY created_at DESC\n",
        "params": [{"name": "min_rows", "type": "int", "default": 100},
                   {"name": "lookback", "type": "duration", "default": "24h"}],
        "max_rows": 200, "timeout": "10s"},
}
ERP_PRIMARY = PostgresTarget.model_validate({"dsn_env": "ERP_PRIMARY_DSN", "statement_timeout": "5s",
                                             "reports": REPORTS}).model_dump(mode="json")
EXAMPLE_VALUES: dict[str, Any] = {
    "notify": {
        "oncall": {"url": "https://chat.example-hospital.org/hooks/erp-oncall", **NOTIFY},
        "dba": {"url": "https://chat.example-hospital.org/hooks/erp-dba", **NOTIFY},
        "security": {"url": "https://chat.example-hospital.org/hooks/erp-security", **NOTIFY},
        "infra_lead": {"url": "https://chat.example-hospital.org/hooks/erp-infra-lead", **NOTIFY},
        "dev_lead": {"url": "https://chat.example-hospital.org/hooks/erp-dev-lead", **NOTIFY},
    },
    "guardrails.protected": [{"action": "waf.*", "reason": "hospital network",
                              "targets": ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "198.51.100.0/28"]}],
    "approvals.notify": "oncall",
    "incidents.notify": "oncall",
    "aws.evidence.bucket": "erp-prod-forensics",
    "aws.elasticache.node_types": ["cache.r6g.large", "cache.r6g.xlarge", "cache.r6g.2xlarge"],
    "targets.postgres": {"erp-primary": ERP_PRIMARY},
    "targets.redis": {"sessions": {"url_env": "SESSIONS_REDIS_URL", "url": None, "timeout": "PT2S"}},
}


def _set(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        tree = tree[key]
    tree[last] = value


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field holds (directly or as the values of a dict), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict:
        return _model_of(get_args(annotation)[1])
    return None


def setting_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every key of the settings tree; sections keyed by free names (notify, incidents.targets) stop there."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        section = field.annotation if isinstance(field.annotation, type) else None
        if section is not None and issubclass(section, BaseModel):
            yield from setting_paths(section, f"{path}.")


def _has(tree: Any, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return False
        tree = tree[key]
    return True


def test_the_example_loads_and_equals_the_defaults_but_for_its_marked_examples() -> None:
    loaded = load_settings(EXAMPLE, environ={}).model_dump(mode="json")
    expected = Settings().model_dump(mode="json")
    for dotted, value in EXAMPLE_VALUES.items():
        _set(expected, dotted, value)
    assert loaded == expected


def test_every_setting_is_in_the_example() -> None:
    written = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    missing = [path for path in setting_paths(Settings) if not _has(written, path)]
    assert not missing, f"settings missing from {EXAMPLE.name}: {missing}"


def test_every_example_value_is_marked_in_the_file() -> None:
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    marked = [line for line in lines if "# EXAMPLE VALUE" in line and not line.startswith("#")]
    assert len(marked) == len(EXAMPLE_VALUES["notify"]) + len(EXAMPLE_VALUES) - 1, marked


def test_every_notify_target_of_the_example_is_complete() -> None:
    written = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    model = _model_of(Settings.model_fields["notify"].annotation)
    assert model is not None
    for name, target in written["notify"].items():
        assert set(target) == set(model.model_fields), name
