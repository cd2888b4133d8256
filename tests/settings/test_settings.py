"""Settings: file plus environment, validated at start, every problem at once, secrets hidden."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from remediator.errors import SettingsError
from remediator.settings import Mode, load_settings, parse_duration


def test_the_embedded_defaults_are_safe() -> None:
    settings = load_settings(None, {})
    assert settings.mode is Mode.DRY_RUN
    assert (settings.listen.host, settings.listen.port) == ("127.0.0.1", 8080)
    assert (settings.admin_listen.host, settings.admin_listen.port) == ("127.0.0.1", 8081)
    assert settings.base_url == "http://127.0.0.1:8081"  # links point at the admin listener
    assert settings.store.url == "sqlite:///var/remediator.db"
    assert settings.coordination.url == "memory://"
    assert settings.policies_dir == Path("policies")
    assert settings.max_body_bytes == 1024 * 1024
    assert not settings.alertmanager.allow_anonymous_loopback and not settings.alertmanager.bearer_tokens


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mode: dry-run\nlisten: {port: 9000}\nengine: {workers: 4}\n")
    settings = load_settings(path, {"REMEDIATOR_MODE": "enforce", "REMEDIATOR_LISTEN__PORT": "9100",
                                    "REMEDIATOR_ALERTMANAGER__BEARER_TOKENS": "[a, b]", "UNRELATED": "x"})
    assert settings.mode is Mode.ENFORCE and settings.listen.port == 9100 and settings.engine.workers == 4
    assert [t.get_secret_value() for t in settings.alertmanager.bearer_tokens] == ["a", "b"]


def test_every_problem_is_reported_at_once_with_its_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("mode: yolo\nlisten: {port: 99999}\nengine: {workers: 0}\ncolour: blue\n"
                    "guardrails: {budget: {max: 3, window: soon}}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {"REMEDIATOR_STORE__URL": "mysql://x"})
    keys = [p.split(":")[0] for p in raised.value.problems]
    assert keys == ["mode", "listen.port", "store.url", "engine.workers", "guardrails.budget.window", "colour"]
    assert "colour: unknown key" in raised.value.problems


def test_secrets_never_show_in_errors_or_reprs(tmp_path: Path) -> None:
    settings = load_settings(None, {"REMEDIATOR_ALERTMANAGER__BEARER_TOKENS": "hunter2-token"})
    assert "hunter2-token" not in repr(settings) and "hunter2-token" not in str(settings.model_dump())
    path = tmp_path / "s.yaml"
    path.write_text("alertmanager: {basic_auth: [{username: am, password: hunter2-pass, extra: 1}]}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert "hunter2-pass" not in str(raised.value)


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30), ("15m", 900), ("1h30m", 5400), ("2d", 172800),
                                                ("250ms", 0.25), (45, 45), ("PT1H", 3600), ("P2DT30M", 174600)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "10", "5x", "m", "P", "PT5X"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_an_unreadable_or_invalid_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml", {})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(SettingsError, match="must be a mapping"):
        load_settings(bad, {})


# -- sns ---------------------------------------------------------------------------------------------
TOPIC = "arn:aws:sns:eu-west-1:123456789012:erp-alarms"


def test_sns_defaults_trust_no_topic_and_confirm_through_the_api() -> None:
    sns = load_settings(None, {}).sns
    assert sns.path == "/webhooks/sns" and sns.topics == [] and sns.allowed_topics == frozenset()
    assert sns.confirm_method == "ConfirmSubscription" and sns.confirm_timeout == timedelta(seconds=5)
    assert sns.max_age == timedelta(hours=2) and sns.insufficient_data.value == "record"
    assert sns.ca_files == [] and sns.mirror_url is None and sns.raw_delivery == []


def test_every_mistyped_topic_fails_the_start_naming_its_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(f"sns:\n  topics: [{TOPIC}, 'arn:aws:sns:eu-west-1:12345678901:short-account', "
                    "'arn:aws-cn:sns:eu-west-1:123456789012:wrong-partition']\n"
                    "  raw_delivery: [{path: /webhooks/sns-raw, topic_arn: 'arn:aws:sqs:eu-west-1:123456789012:q', "
                    "secret: a-long-enough-secret}]\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    keys = [p.split(":")[0] for p in raised.value.problems]
    assert keys == ["sns.topics.1", "sns.topics.2", "sns.raw_delivery.0.topic_arn"]
    assert "not in partition aws-cn" in raised.value.problems[1]


def test_raw_delivery_needs_a_long_secret_that_never_shows(tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(f"sns: {{raw_delivery: [{{path: /webhooks/sns-raw, topic_arn: '{TOPIC}', secret: hunter2}}]}}\n")
    with pytest.raises(SettingsError) as raised:
        load_settings(path, {})
    assert raised.value.problems == ["sns.raw_delivery.0.secret: must be at least 16 characters "
                                     "(it is the only proof of origin)"]
    assert "hunter2" not in str(raised.value)
    path.write_text(f"sns: {{raw_delivery: [{{path: /webhooks/sns-raw, topic_arn: '{TOPIC}', "
                    "secret: correct-horse-battery}]}\n")
    settings = load_settings(path, {})
    assert settings.sns.allowed_topics == {TOPIC}  # its confirmations are signed and verified
    assert "correct-horse-battery" not in repr(settings)


def test_the_admin_listener_never_shares_the_public_port() -> None:
    with pytest.raises(SettingsError, match=r"admin_listen\.port must differ from listen\.port"):
        load_settings(None, {"REMEDIATOR_ADMIN_LISTEN__PORT": "8080"})
    both_free = load_settings(None, {"REMEDIATOR_LISTEN__PORT": "0", "REMEDIATOR_ADMIN_LISTEN__PORT": "0"})
    assert both_free.listen.port == both_free.admin_listen.port == 0  # two sockets, each on a port of its own


def test_sign_in_must_stay_possible() -> None:
    with pytest.raises(SettingsError, match=r"api\.sign_in_failures: .*at least 1"):
        load_settings(None, {"REMEDIATOR_API__SIGN_IN_FAILURES": "{max: 0, window: 1m}"})


def test_webhook_paths_must_differ() -> None:
    with pytest.raises(SettingsError, match="must differ"):
        load_settings(None, {"REMEDIATOR_SNS__PATH": "/webhooks/alertmanager"})


def test_a_mirror_off_loopback_needs_the_ca_that_issued_its_certificates(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="needs ca_files"):
        load_settings(None, {"REMEDIATOR_SNS__MIRROR_URL": "http://certs.internal.example"})
    assert load_settings(None, {"REMEDIATOR_SNS__MIRROR_URL": "http://127.0.0.1:4566"}).sns.mirror_url
    with pytest.raises(SettingsError) as raised:
        load_settings(None, {"REMEDIATOR_SNS__CA_FILES": f"[{tmp_path / 'missing.pem'}, /dev/null]"})
    assert [p.split(": ", 1)[0] for p in raised.value.problems] == ["sns.ca_files"]
    assert "missing.pem: cannot read" in raised.value.problems[0]


@pytest.mark.parametrize(("key", "value"), [
    ("engine.action_timeout", "-5"), ("engine.action_timeout", "0"), ("engine.stop_timeout", "0s"),
    ("engine.backlog_poll", "0"), ("coordination.lease_ttl", "-1m"), ("approvals.expire_after", "0"),
    ("guardrails.default_cooldown", "-10m"), ("sns.max_age", "-PT1H"),
    ("aws.call_timeout", "0"),
])
def test_a_negative_or_zero_duration_where_none_makes_sense_fails_the_start(key: str, value: str) -> None:
    section, _, rest = key.partition(".")
    environ = {f"REMEDIATOR_{section.upper()}__{rest.upper().replace('.', '__')}": value}
    with pytest.raises(SettingsError) as raised:
        load_settings(None, environ)
    assert [p.split(":")[0] for p in raised.value.problems] == [key]


def test_a_window_of_zero_fails_the_start() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(None, {"REMEDIATOR_GUARDRAILS__BUDGET": "{max: 3, window: 0}"})
    assert raised.value.problems == ["guardrails.budget.window: must be longer than zero"]


@pytest.mark.parametrize(("key", "value"), [("guardrails.default_cooldown", "0"),
                                            ("engine.retry_initial_wait", "0s"), ("approvals.remind_before", "0")])
def test_zero_is_a_duration_where_it_means_none(key: str, value: str) -> None:
    section, _, rest = key.partition(".")
    settings = load_settings(None, {f"REMEDIATOR_{section.upper()}__{rest.upper()}": value})
    assert getattr(getattr(settings, section), rest) == timedelta(0)
