"""Guardrails with a fake clock: each rule, their order, and all-or-nothing quotas."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest

from remediator.actions.registry import default_registry
from remediator.clock import FakeClock
from remediator.errors import CoordinationUnavailable
from remediator.guardrails import GuardInput, Guardrails, default_guardrails
from remediator.model import DecisionReason, Risk, Severity, Verdict
from remediator.policy.model import StepGuardrails
from remediator.settings import GuardrailSettings
from remediator.stores.coordination import Admission, KillSwitch, Quota
from remediator.stores.memory import InProcessCoordination
from tests.support import builders

NOTIFY = default_registry().get("notify.webhook")


class HighRiskNotify(type(NOTIFY)):  # type: ignore[misc]
    """notify.webhook dressed as a high-risk action that changes things and needs shared limits."""

    risk = Risk.HIGH
    needs_coordination = True
    budgeted = True
    changes_nothing = False


REQUEST_IDS = itertools.count()


def guard_input(clock: FakeClock, *, step: dict[str, Any] | None = None, flaps: int = 0, action: Any = None,
                **request: Any) -> GuardInput:
    """A fresh request each time (a new id), unless the test names one."""
    request.setdefault("request_id", f"req-{next(REQUEST_IDS)}")
    return GuardInput(builders.request(**request), StepGuardrails.model_validate(step or {}), builders.alert(),
                      action or HighRiskNotify(), clock.now(), flaps)


def rails(coordination: Any = None, **settings: Any) -> tuple[Guardrails, Any]:
    coordination = coordination or InProcessCoordination()
    config = GuardrailSettings.model_validate({"hold_severities": [], "default_cooldown": "0s", **settings})
    return default_guardrails(config, coordination), coordination


async def test_nothing_configured_allows(clock: FakeClock) -> None:
    guardrails, _ = rails()
    decision = await guardrails.evaluate(guard_input(clock, action=NOTIFY))
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, DecisionReason.ALLOWED)


async def test_cooldown_per_policy_and_target(clock: FakeClock) -> None:
    guardrails, _ = rails()
    step = {"cooldown": "10m"}
    assert (await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY))).verdict is Verdict.ALLOW
    clock.advance(timedelta(minutes=9))
    denied = await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY))
    assert (denied.verdict, denied.reason) == (Verdict.DENY, DecisionReason.COOLDOWN)
    assert "retry in 60s" in denied.detail
    other = await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY, target="notify:dba"))
    assert other.verdict is Verdict.ALLOW  # another target has its own cooldown
    clock.advance(timedelta(minutes=1, seconds=1))
    assert (await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY))).verdict is Verdict.ALLOW


async def test_deciding_the_same_request_again_gives_the_same_verdict(clock: FakeClock) -> None:
    """Two replicas deciding one occurrence: the second must not be denied by the first's cooldown."""
    guardrails, _ = rails()
    step = {"cooldown": "10m"}
    first = await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY, request_id="same"))
    again = await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY, request_id="same"))
    other = await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY))
    assert (first.verdict, again.verdict, other.reason) == (Verdict.ALLOW, Verdict.ALLOW, DecisionReason.COOLDOWN)


async def test_the_default_cooldown_applies_when_the_policy_sets_none(clock: FakeClock) -> None:
    guardrails, _ = rails(default_cooldown="5m")
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).verdict is Verdict.ALLOW
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).reason is DecisionReason.COOLDOWN


async def test_rate_limit_per_policy_step_over_a_window(clock: FakeClock) -> None:
    guardrails, _ = rails()
    step = {"rate_limit": {"max": 2, "window": "1h"}}
    verdicts = []
    for i in range(3):
        verdicts.append((await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY,
                                                               target=f"t{i}"))).reason)
        clock.advance(timedelta(minutes=10))
    assert verdicts == [DecisionReason.ALLOWED, DecisionReason.ALLOWED, DecisionReason.RATE_LIMITED]
    clock.advance(timedelta(minutes=31))
    assert (await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY, target="t9"))).verdict \
        is Verdict.ALLOW


async def test_blast_radius_caps_distinct_targets_of_an_action_type(clock: FakeClock) -> None:
    guardrails, _ = rails()
    step = {"blast_radius": {"max": 2, "window": "1h"}}
    reasons = [(await guardrails.evaluate(guard_input(clock, step=step, action=NOTIFY, target=t,
                                                      policy=p))).reason
               for t, p in (("a", "p1"), ("b", "p2"), ("a", "p3"), ("c", "p4"))]
    assert reasons == [DecisionReason.ALLOWED] * 3 + [DecisionReason.BLAST_RADIUS]


async def test_the_global_budget_counts_every_budgeted_action(clock: FakeClock) -> None:
    guardrails, _ = rails(budget={"max": 2, "window": "1h"})
    reasons = [(await guardrails.evaluate(guard_input(clock, target=f"t{i}", severity=Severity.P3,
                                                      risk=Risk.NORMAL, action=_normal()))).reason for i in range(3)]
    assert reasons == [DecisionReason.ALLOWED, DecisionReason.ALLOWED, DecisionReason.BUDGET_EXHAUSTED]
    # Notifications are not budgeted: they still get out.
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).verdict is Verdict.ALLOW


def _normal() -> Any:
    class Normal(HighRiskNotify):
        risk = Risk.NORMAL

    return Normal()


async def test_a_denial_spends_no_other_allowance(clock: FakeClock) -> None:
    guardrails, coordination = rails(budget={"max": 1, "window": "1h"})
    step = {"cooldown": "1h"}
    await coordination.admit([Quota("cooldown:pg-conns:notify.webhook:notify:oncall", 1, timedelta(hours=1),
                                    DecisionReason.COOLDOWN)], clock.now())
    assert (await guardrails.evaluate(guard_input(clock, step=step, action=_normal()))).reason \
        is DecisionReason.COOLDOWN
    # The cooldown denied before the budget was counted: the budget of one is still there.
    assert (await guardrails.evaluate(guard_input(clock, step=step, action=_normal(), target="x"))).verdict \
        is Verdict.ALLOW


@pytest.mark.parametrize(("request_fields", "step", "hold"), [
    ({"severity": Severity.P1, "risk": Risk.NORMAL}, {}, True),
    ({"severity": Severity.P2, "risk": Risk.HIGH}, {}, True),
    ({"severity": Severity.P2, "risk": Risk.NORMAL}, {"require_approval": True}, True),
    ({"severity": Severity.P2, "risk": Risk.NORMAL}, {}, False),
    ({"severity": Severity.P1, "risk": Risk.HIGH, "origin": "approval:A-1"}, {}, False),
])
async def test_p1_and_high_risk_are_held_for_approval(clock: FakeClock, request_fields: dict[str, Any],
                                                      step: dict[str, Any], hold: bool) -> None:
    guardrails, _ = rails(hold_severities=["P1"])
    decision = await guardrails.evaluate(guard_input(clock, step=step, action=_normal(), **request_fields))
    assert (decision.verdict is Verdict.HOLD) is hold
    if hold:
        assert decision.reason is DecisionReason.APPROVAL_REQUIRED


async def test_a_notification_of_a_p1_policy_is_not_held_but_a_high_risk_one_is(clock: FakeClock) -> None:
    """Holding a notification would only delay telling people about the most serious incidents."""
    guardrails, _ = rails(hold_severities=["P1"])
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY, severity=Severity.P1))).verdict \
        is Verdict.ALLOW
    held = await guardrails.evaluate(guard_input(clock, action=NOTIFY, severity=Severity.P1,
                                                 step={"require_approval": True}))
    assert held.verdict is Verdict.HOLD


async def test_kill_switch_from_settings_or_api_denies_everything_first(clock: FakeClock) -> None:
    forced, _ = rails(kill_switch=True, hold_severities=["P1"])
    decision = await forced.evaluate(guard_input(clock, severity=Severity.P1))
    assert decision.reason is DecisionReason.KILL_SWITCH and "settings" in decision.detail
    guardrails, coordination = rails()
    await coordination.set_kill_switch(KillSwitch(True, "alice", "database migration", clock.now()))
    decision = await guardrails.evaluate(guard_input(clock, action=NOTIFY))
    assert decision.reason is DecisionReason.KILL_SWITCH
    assert decision.detail == "kill switch turned on by alice: database migration"


@pytest.mark.parametrize(("pattern", "target", "protected"), [
    ("10.0.0.0/8", "10.1.2.3/32", True),
    ("10.0.0.0/8", "10.1.2.3", True),
    ("10.0.0.0/8", "8.0.0.0/6", True),  # a wider block that contains the protected range
    ("10.0.0.0/8", "11.0.0.1/32", False),
    ("2001:db8::/32", "2001:db8:1::7/128", True),
    ("2001:db8::/32", "10.1.2.3/32", False),
    ("arn:aws:ecs:*:service/erp-prod/erp-db-migrator", "arn:aws:ecs:eu:service/erp-prod/erp-db-migrator", True),
    ("arn:aws:ecs:*:service/erp-prod/erp-db-migrator", "arn:aws:ecs:eu:service/erp-prod/erp-api", False),
])
async def test_protected_targets(clock: FakeClock, pattern: str, target: str, protected: bool) -> None:
    guardrails, _ = rails(protected=[{"action": "*", "targets": [pattern], "reason": "internal"}])
    decision = await guardrails.evaluate(guard_input(clock, action=_normal(), target=target))
    assert (decision.reason is DecisionReason.PROTECTED_TARGET) is protected
    if protected:
        assert decision.detail == f"{target} is protected by {pattern} (internal)"


async def test_protection_is_per_action_type(clock: FakeClock) -> None:
    guardrails, _ = rails(protected=[{"action": "waf.*", "targets": ["10.0.0.0/8"]}])
    decision = await guardrails.evaluate(guard_input(clock, action=_normal(), target="10.0.0.1"))
    assert decision.verdict is Verdict.ALLOW


async def test_flapping_alerts_are_not_acted_on(clock: FakeClock) -> None:
    guardrails, _ = rails(flap={"max": 4, "window": "30m"})
    assert (await guardrails.evaluate(guard_input(clock, flaps=4, action=NOTIFY))).verdict is Verdict.ALLOW
    decision = await guardrails.evaluate(guard_input(clock, flaps=5, action=NOTIFY))
    assert decision.reason is DecisionReason.FLAPPING and "changed state 5 times" in decision.detail


class Unreachable(InProcessCoordination):
    async def kill_switch(self) -> KillSwitch:
        raise CoordinationUnavailable("redis: connection refused")

    async def admit(self, quotas: Any, now: Any, request_id: str = "") -> Admission:
        raise CoordinationUnavailable("redis: connection refused")


async def test_without_coordination_actions_needing_limits_are_denied_never_run_unlimited(clock: FakeClock) -> None:
    guardrails, _ = rails(Unreachable())
    decision = await guardrails.evaluate(guard_input(clock, action=_normal()))
    assert decision.reason is DecisionReason.COORDINATION_UNAVAILABLE
    # A notification needs no shared limit: it still goes out.
    assert (await guardrails.evaluate(guard_input(clock, action=NOTIFY))).verdict is Verdict.ALLOW


UNBLOCK = default_registry().get("waf.unblock_ip")


@pytest.mark.parametrize("forced", [True, False], ids=["settings", "api"])
async def test_the_kill_switch_lets_the_expiry_of_remediators_own_block_through(clock: FakeClock,
                                                                                forced: bool) -> None:
    """An expiry only lifts a restriction already decided: the switch must not make it permanent."""
    guardrails, coordination = rails(kill_switch=forced, budget={"max": 1, "window": "1h"})
    if not forced:
        await coordination.set_kill_switch(KillSwitch(True, "alice", "WAF change freeze", clock.now()))
    expiry = guard_input(clock, action=UNBLOCK, origin="system")

    decision = await guardrails.evaluate(expiry)

    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, DecisionReason.ALLOWED)
    assert decision.detail.startswith("kill switch") and "an expiry only lifts remediator's own restriction" \
        in decision.detail
    # Every other rule still applies: the budget it spent denies the next expiry.
    next_expiry = guard_input(clock, action=UNBLOCK, origin="system", request_id="req-2")
    assert (await guardrails.evaluate(next_expiry)).reason is DecisionReason.BUDGET_EXHAUSTED


@pytest.mark.parametrize(("origin", "action"), [
    ("policy", UNBLOCK),  # a policy's unblock is a new change like any other
    ("system", _normal()),  # a system request of an action that does not only loosen
])
async def test_the_kill_switch_stops_every_other_unblock_or_system_request(clock: FakeClock, origin: str,
                                                                           action: Any) -> None:
    guardrails, _ = rails(kill_switch=True)
    decision = await guardrails.evaluate(guard_input(clock, action=action, origin=origin))
    assert decision.reason is DecisionReason.KILL_SWITCH


async def test_an_expiry_is_never_held_for_approval(clock: FakeClock) -> None:
    guardrails, _ = rails(hold_severities=["P1"])
    expiry = await guardrails.evaluate(guard_input(clock, action=UNBLOCK, origin="system", severity=Severity.P1))
    assert expiry.verdict is Verdict.ALLOW and expiry.detail == ""
    by_policy = await guardrails.evaluate(guard_input(clock, action=UNBLOCK, severity=Severity.P1))
    assert by_policy.verdict is Verdict.HOLD


async def test_protection_never_keeps_remediators_own_block_in_place(clock: FakeClock) -> None:
    """An address protected after it was blocked: its expiry passes; a new block of it does not."""
    guardrails, _ = rails(protected=[{"action": "waf.*", "targets": ["203.0.113.0/24"], "reason": "clinic NAT"}])
    unblock = builders.request(action="waf.unblock_ip", target="203.0.113.50", origin="system")
    expiry = await guardrails.evaluate(GuardInput(unblock, StepGuardrails(), builders.alert(), UNBLOCK, clock.now()))
    assert expiry.verdict is Verdict.ALLOW
    assert expiry.detail == ("203.0.113.50 is protected by 203.0.113.0/24 (clinic NAT); let through: an expiry only "
                             "lifts remediator's own restriction")
    block = builders.request(action="waf.block_ip", target="203.0.113.50")
    denied = await guardrails.evaluate(GuardInput(block, StepGuardrails(), builders.alert(), _normal(), clock.now()))
    assert denied.reason is DecisionReason.PROTECTED_TARGET
