"""Shared fixtures: the corpus, a fake clock, settings on a temporary SQLite store."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediator.clock import FakeClock
from remediator.settings import Settings

# start_daemon; make_harness, sink; the SNS endpoint's CA, certificate mirror and moto
pytest_plugins = ["tests.support.daemon", "tests.support.engine", "tests.support.sns"]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("REMEDIATOR_CORPUS") or ROOT / "tests" / "corpus")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a fresh SQLite file; keyword arguments override top-level keys (sections are merged)."""

    def make(**overrides: Any) -> Settings:
        base: dict[str, Any] = {
            "store": {"url": f"sqlite:///{tmp_path / 'remediator.db'}"},
            "policies_dir": str(tmp_path / "policies"),
            "alertmanager": {"bearer_tokens": ["am-secret"]},
        }
        for key, value in overrides.items():
            base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) \
                else value
        (tmp_path / "policies").mkdir(exist_ok=True)
        return Settings.model_validate(base)

    return make


def corpus_file(name: str) -> Path:
    path = CORPUS / name
    if not path.exists():
        pytest.fail(f"corpus file {path} is missing (REMEDIATOR_CORPUS points at a corpus folder)")
    return path
