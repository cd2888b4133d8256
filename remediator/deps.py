"""The one typed bag of long-lived dependencies the engine and handlers are built from."""

from __future__ import annotations

from dataclasses import dataclass

from remediator.actions.base import ActionDeps, ActionRegistry
from remediator.clock import Clock
from remediator.guardrails import Guardrails
from remediator.observability import Metrics
from remediator.policy.match import PolicyIndex
from remediator.settings import Mode, Settings
from remediator.stores.base import Store
from remediator.stores.coordination import Coordination


@dataclass(slots=True)
class Deps:
    settings: Settings
    clock: Clock
    store: Store
    coordination: Coordination
    registry: ActionRegistry
    policies: PolicyIndex
    guardrails: Guardrails
    metrics: Metrics
    actions: ActionDeps

    @property
    def holder(self) -> str:
        return self.store.holder

    @property
    def dry_run(self) -> bool:
        return self.settings.mode is Mode.DRY_RUN
