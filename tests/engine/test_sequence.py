"""Ordered steps on the engine: a step with `when` waits for the step before it, runs or is
recorded as skipped (audit and timeline, with the reason), waits for a held step's approval, and
goes on after a crash between two steps without running anything twice.

Real SQLite store, fake clock, the harness's `test.restart` action and a real HTTP sink.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from remediator.engine.pipeline import Engine
from remediator.engine.sequence import Settled, StepResult, judge
from remediator.model import ApprovalStatus, AuditRecord, Choice, DecisionReason, Outcome, Verdict
from remediator.policy.model import StepCondition
from tests.support import builders
from tests.support.engine import Harness, HarnessFactory

DOWN = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"})
RESOLVED = builders.alert("ApiDown", fingerprint="fp-api", group="api", labels={"service": "erp-api"},
                          status="resolved")


def policy(severity: str = "P3", first: str = "", *steps: str) -> str:
    return f"""
policies:
  - name: restart-then-tell
    severity: {severity}
    match: {{alertname: ApiDown}}
    actions:
      - type: test.restart
        name: restart
        params: {{service: "{{labels.service}}"}}
{first}""" + "".join(steps)


def tell(text: str, when: str, after: str = "") -> str:
    return (f"      - type: notify.webhook\n        when: {when}\n" + (f"        after: {after}\n" if after else "")
            + f"        params: {{to: oncall, text: \"{text}\"}}\n")


BOTH = policy("P3", "", tell("restarted {labels.service}", "succeeded"),
              tell("NOT restarted: {previous.reason}", "failed", after="restart"))


async def audit(h: Harness) -> list[AuditRecord]:
    return list(reversed(await h.deps.store.list_audit()))  # in the order recorded


def texts(h: Harness) -> list[str]:
    return [body["text"] for body in h.sink.to("oncall") if "approval" not in body.get("title", "")]


@pytest.mark.parametrize(("result", "when", "runs", "dry"), [
    (StepResult.SUCCEEDED, "succeeded", True, False), (StepResult.SUCCEEDED, "failed", False, False),
    (StepResult.SUCCEEDED, "always", True, False),
    (StepResult.DRY_RUN, "succeeded", True, True), (StepResult.DRY_RUN, "failed", False, False),
    (StepResult.DRY_RUN, "always", True, True),
    (StepResult.FAILED, "succeeded", False, False), (StepResult.FAILED, "failed", True, False),
    (StepResult.FAILED, "always", True, False),
    (StepResult.SKIPPED, "succeeded", False, False), (StepResult.SKIPPED, "failed", False, False),
    (StepResult.SKIPPED, "always", True, False),
    (StepResult.UNKNOWN, "succeeded", False, False), (StepResult.UNKNOWN, "failed", False, False),
    (StepResult.UNKNOWN, "always", True, False),
    (StepResult.RESOLVED, "succeeded", False, False), (StepResult.RESOLVED, "failed", False, False),
    (StepResult.RESOLVED, "always", False, False),
])
def test_what_each_outcome_of_the_previous_step_means_for_each_condition(
    result: StepResult, when: StepCondition, runs: bool, dry: bool
) -> None:
    previous = Settled("p", 0, "inc", "alert", "waf.block_ip", "203.0.113.9", result, "failed (access_denied): no")
    ruling = judge(when, previous)
    assert (ruling.runs, ruling.dry_run) == (runs, dry)
    assert "waf.block_ip (step 1)" in ruling.why and f"when: {when}" in ruling.why


async def test_a_step_after_a_success_runs_after_it_and_the_failure_branch_is_recorded_as_skipped(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(BOTH)
    await h.deliver(DOWN)
    assert h.action.runs == ["erp-api"] and texts(h) == ["restarted erp-api"]
    records = await audit(h)
    assert [(r.action, r.verdict, r.decision_reason, r.outcome) for r in records] == [
        ("test.restart", Verdict.ALLOW, DecisionReason.ALLOWED, Outcome.SUCCEEDED),
        ("notify.webhook", Verdict.DENY, DecisionReason.SKIPPED, Outcome.NOT_RUN),
        ("notify.webhook", Verdict.ALLOW, DecisionReason.ALLOWED, Outcome.SUCCEEDED),
    ]
    assert records[1].decision_detail == ("the previous step test.restart (step 1) succeeded; this step runs "
                                          "when: failed")
    assert records[2].decision_detail == "when: succeeded — the previous step test.restart (step 1) succeeded"
    timeline = [e for e in await h.deps.store.timeline(records[0].incident_id) if e.kind == "decided"]
    assert [e.message.split(":")[0] for e in timeline] == ["test.restart on svc", "notify.webhook on notify",
                                                           "notify.webhook on notify"]
    assert "deny (skipped) — the previous step test.restart (step 1) succeeded" in timeline[1].message


async def test_a_failed_step_leads_to_the_failure_branch_which_says_why_and_never_to_the_success_one(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(BOTH)
    h.action.fails_with = "AccessDenied: not allowed to restart erp-api"
    await h.deliver(DOWN)
    assert texts(h) == ["NOT restarted: failed (access_denied): AccessDenied: not allowed to restart erp-api"]
    records = await audit(h)
    skipped = next(r for r in records if r.decision_reason is DecisionReason.SKIPPED)
    assert skipped.params["text"] == "restarted erp-api" and skipped.outcome is Outcome.NOT_RUN
    assert "did not take effect (failed (access_denied)" in skipped.decision_detail


async def test_a_refused_precheck_counts_as_failed(make_harness: HarnessFactory) -> None:
    h = await make_harness(BOTH)
    h.action.precheck_says = "erp-api is being deployed"
    await h.deliver(DOWN)
    assert h.action.runs == [] and texts(h) == ["NOT restarted: failed (precheck_failed): erp-api is being deployed"]


async def test_a_denied_step_counts_as_failed(make_harness: HarnessFactory) -> None:
    h = await make_harness(BOTH, guardrails={"kill_switch": True})
    await h.deliver(DOWN)
    # The kill switch denies every action, the failure notice too: nothing is told, nothing ran.
    records = await audit(h)
    assert [(r.action, r.decision_reason) for r in records] == [
        ("test.restart", DecisionReason.KILL_SWITCH), ("notify.webhook", DecisionReason.SKIPPED),
        ("notify.webhook", DecisionReason.KILL_SWITCH)]
    assert "did not take effect (denied (kill_switch)" in records[1].decision_detail


async def test_in_dry_run_the_whole_chain_is_recorded_as_dry_runs_and_nothing_is_sent(
    make_harness: HarnessFactory,
) -> None:
    h = await make_harness(BOTH, mode="dry-run")
    await h.deliver(DOWN)
    assert h.action.runs == [] and texts(h) == []
    records = await audit(h)
    assert [(r.action, r.decision_reason, r.outcome, r.mode) for r in records] == [
        ("test.restart", DecisionReason.ALLOWED, Outcome.DRY_RUN, "dry-run"),
        ("notify.webhook", DecisionReason.SKIPPED, Outcome.NOT_RUN, "dry-run"),
        ("notify.webhook", DecisionReason.ALLOWED, Outcome.DRY_RUN, "dry-run"),
    ]
    assert records[2].decision_detail.endswith("ran dry (dry-run); recorded as a dry run like it")


async def test_in_enforce_a_step_after_a_dry_run_only_step_is_a_dry_run_too(make_harness: HarnessFactory) -> None:
    dry_first = BOTH.replace('params: {service: "{labels.service}"}',
                             'params: {service: "{labels.service}"}\n        guardrails: {dry_run: true}')
    h = await make_harness(dry_first)
    await h.deliver(DOWN)
    assert h.action.runs == [] and texts(h) == []  # "restarted" would be a lie: nothing restarted
    records = await audit(h)
    assert [(r.outcome, r.mode) for r in records if r.decision_reason is not DecisionReason.SKIPPED] == [
        (Outcome.DRY_RUN, "dry-run"), (Outcome.DRY_RUN, "dry-run")]


async def test_a_follower_of_a_dry_run_only_step_that_would_be_held_is_a_dry_run_not_an_approval(
    make_harness: HarnessFactory,
) -> None:
    chain = policy("P3", "        guardrails: {dry_run: true}\n",
                   "      - type: test.restart\n        when: succeeded\n        params: {service: erp-web}\n"
                   "        guardrails: {require_approval: true}\n")
    h = await make_harness(chain)
    await h.deliver(DOWN)
    assert h.action.runs == [] and await h.deps.store.list_approvals(ApprovalStatus.PENDING) == []
    follower = (await audit(h))[-1]
    assert (follower.target, follower.verdict, follower.outcome, follower.mode) == (
        "svc:erp-web", Verdict.ALLOW, Outcome.DRY_RUN, "dry-run")
    assert "not held, a dry run" in follower.decision_detail


async def test_a_skipped_step_skips_the_steps_after_it_but_always_runs(make_harness: HarnessFactory) -> None:
    chain = policy("P3", "", tell("one", "succeeded"), tell("two", "succeeded"), tell("three", "failed"),
                   tell("four", "always"))
    h = await make_harness(chain)
    h.action.fails_with = "no"
    await h.deliver(DOWN)
    assert texts(h) == ["four"]
    records = await audit(h)
    assert [(r.params.get("text"), r.decision_reason) for r in records[1:]] == [
        ("one", DecisionReason.SKIPPED), ("two", DecisionReason.SKIPPED), ("three", DecisionReason.SKIPPED),
        ("four", DecisionReason.ALLOWED)]
    assert "the previous step notify.webhook (step 2) was skipped" in records[2].decision_detail


async def test_a_step_after_a_held_step_waits_until_people_approve_and_it_ran(make_harness: HarnessFactory) -> None:
    h = await make_harness(policy("P1", "", tell("restarted {labels.service}", "succeeded")))
    await h.deliver(DOWN)
    [approval] = await h.deps.store.list_approvals(ApprovalStatus.PENDING)
    assert texts(h) == [] and [r.verdict for r in await audit(h)] == [Verdict.HOLD]  # the notice waits
    [note] = [e for e in await h.deps.store.timeline(approval.incident_id) if e.kind == "steps_waiting"]
    assert note.message == ("step 2 (notify.webhook, when: succeeded) of restart-then-tell wait(s) for step 1 "
                            "(test.restart on svc:erp-api), held for approval")

    answer = await h.engine.approvals.vote(approval.id, builders.vote(approval, "alice"))
    assert answer.approval is not None and answer.approval.outcome is Outcome.SUCCEEDED
    assert h.action.runs == ["erp-api"] and texts(h) == ["restarted erp-api"]
    records = await audit(h)
    assert [(r.action, r.verdict, r.outcome) for r in records] == [
        ("test.restart", Verdict.HOLD, Outcome.NOT_RUN), ("test.restart", Verdict.ALLOW, Outcome.SUCCEEDED),
        ("notify.webhook", Verdict.ALLOW, Outcome.SUCCEEDED)]


async def test_a_rejected_held_step_leads_to_the_failure_branch(make_harness: HarnessFactory) -> None:
    h = await make_harness(policy("P1", "", tell("restarted", "succeeded"),
                                  tell("NOT restarted: {previous.reason}", "failed", after="restart")))
    await h.deliver(DOWN)
    [approval] = await h.deps.store.list_approvals(ApprovalStatus.PENDING)
    await h.engine.approvals.vote(approval.id, builders.vote(approval, "alice", Choice.REJECT))
    assert h.action.runs == []
    [told] = texts(h)
    assert told.startswith(f"NOT restarted: not run, approval {approval.id} rejected")
    assert [r.decision_reason for r in await audit(h)][-2:] == [DecisionReason.SKIPPED, DecisionReason.ALLOWED]


async def test_a_chain_cut_short_by_a_crash_goes_on_when_the_alert_is_replayed(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = await make_harness(BOTH)

    async def crash(*_: Any) -> None:
        raise RuntimeError("the process died between two steps")

    monkeypatch.setattr(h.engine.sequence, "after", crash)
    with pytest.raises(RuntimeError):
        await h.deliver(DOWN)
    assert h.action.runs == ["erp-api"] and texts(h) == []
    monkeypatch.undo()

    restarted = Engine(h.deps)  # a new process: it remembers nothing, the store does
    await restarted.process([DOWN])
    assert h.action.runs == ["erp-api"]  # not run again
    assert texts(h) == ["restarted erp-api"]
    await restarted.process([DOWN])  # and a second replay adds nothing
    assert texts(h) == ["restarted erp-api"] and len(await audit(h)) == 3


async def test_an_expired_held_step_leads_to_the_failure_branch(make_harness: HarnessFactory) -> None:
    h = await make_harness(policy("P1", "", tell("NOT restarted: {previous.reason}", "failed")))
    await h.deliver(DOWN)
    [approval] = await h.deps.store.list_approvals(ApprovalStatus.PENDING)
    await h.tick(timedelta(minutes=31))
    assert h.action.runs == []
    assert texts(h) == [f"NOT restarted: not run, approval {approval.id} expired: nobody decided within 30 min; "
                        "nothing ran"]


async def test_a_held_step_whose_alert_resolved_ends_the_chain_and_asks_nobody_for_more(
    make_harness: HarnessFactory,
) -> None:
    restart_web = ("      - type: test.restart\n        when: always\n        params: {service: erp-web}\n")
    h = await make_harness(policy("P1", "", restart_web, tell("told", "always")))
    await h.deliver(DOWN)
    await h.deliver(RESOLVED)
    [closed] = await h.deps.store.list_approvals(ApprovalStatus.NO_LONGER_NEEDED)
    assert await h.deps.store.list_approvals(ApprovalStatus.PENDING) == []  # no approval for the follower
    assert h.action.runs == [] and texts(h) == []
    records = await audit(h)
    assert [(r.target, r.decision_reason) for r in records] == [
        ("svc:erp-api", DecisionReason.APPROVAL_REQUIRED), ("svc:erp-web", DecisionReason.SKIPPED),
        ("notify:oncall", DecisionReason.SKIPPED)]
    assert records[1].decision_detail.startswith(f"nothing more of restart-then-tell runs: not run, approval "
                                                 f"{closed.id} no longer needed")
    assert records[2].decision_detail == "nothing more of restart-then-tell runs: its alert ApiDown has resolved"


async def test_a_chain_of_a_policy_about_resolved_alerts_runs_to_its_end(make_harness: HarnessFactory) -> None:
    # Only a firing alert that has resolved since ends a chain; an alert that is a resolution does not.
    about_resolved = BOTH.replace("match: {alertname: ApiDown}", "match: {alertname: ApiDown, status: resolved}")
    h = await make_harness(about_resolved)
    await h.deliver(DOWN)
    await h.deliver(RESOLVED)
    assert h.action.runs == ["erp-api"] and texts(h) == ["restarted erp-api"]


async def test_a_chain_cut_short_after_an_approved_run_goes_on_when_its_safety_net_fires(
    make_harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = await make_harness(policy("P1", "", tell("restarted {labels.service}", "succeeded")))
    await h.deliver(DOWN)
    [approval] = await h.deps.store.list_approvals(ApprovalStatus.PENDING)

    async def crash(*_: Any) -> None:
        raise RuntimeError("the process died right after the approved run")

    monkeypatch.setattr(h.engine.sequence, "after", crash)
    with pytest.raises(RuntimeError):
        await h.engine.approvals.vote(approval.id, builders.vote(approval, "alice"))
    monkeypatch.undo()
    assert h.action.runs == ["erp-api"] and texts(h) == []

    restarted = Engine(h.deps)  # another process: the approved run's timer finds the run recorded
    h.clock.advance(timedelta(hours=1))
    await restarted.timers.fire_due()
    assert h.action.runs == ["erp-api"] and texts(h) == ["restarted erp-api"]
    decided = await h.deps.store.get_approval(approval.id)
    assert decided is not None and decided.outcome is Outcome.SUCCEEDED
