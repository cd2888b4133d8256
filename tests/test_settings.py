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
                                                ("250ms", 0.25), (45, 45)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "10", "5x", "m"])
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
