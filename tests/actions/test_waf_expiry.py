"""WAF blocks in the running daemon: blocked through an alert, expired through the engine, audited.

The daemon runs in this process with the shipped registry, a real SQLite store and a fake
clock; its AWS calls go through the fault proxy to moto. A block is a request like any other;
its expiry is a durable timer whose `waf.unblock_ip` request (origin "system") passes the
guardrails and leaves its own audit record and timeline events.
"""

from __future__ import annotations

from datetime import timedelta

from remediator.actions.aws.waf import UnblockIp
from remediator.actions.aws.waf_ledger import InMemoryBlockLedger, WafBlock, unblock_params
from remediator.actions.base import ActionDeps
from remediator.clock import FakeClock
from remediator.model import AuditRecord, DecisionReason, FailureReason, Outcome, Verdict
from remediator.stores.coordination import KillSwitch
from tests.actions.conftest import post_alert
from tests.actions.test_waf import addresses, make_ip_set
from tests.support.context import CtxFactory, MotoClient
from tests.support.daemon import Daemon, DaemonFactory
from tests.support.faultproxy import FaultProxy, Rule

ADDRESS = "203.0.113.7/32"


def block_policy(arn: str, duration: str = "15m") -> str:
    return f"""
name: waf-scanner-block
severity: P3
match: {{source: alertmanager, alertname: WafScanner}}
actions:
  - type: waf.block_ip
    params: {{ip_set_arn: "{arn}", address: "{{labels.source_ip}}", duration: {duration}}}
"""


async def scanner(daemon: Daemon, clock: FakeClock, source_ip: str = "203.0.113.7", fingerprint: str = "fp-scan",
                  group: str = "") -> None:
    await post_alert(daemon, "WafScanner", {"source_ip": source_ip}, fingerprint=fingerprint, starts_at=clock.now(),
                     group=group)


async def audit(daemon: Daemon, action: str) -> list[AuditRecord]:
    return [r for r in reversed(await daemon.deps.store.list_audit()) if r.action == action]


async def tick(daemon: Daemon, clock: FakeClock, delta: timedelta) -> int:
    clock.advance(delta)
    return await daemon.engine.timers.fire_due()


async def blocked_then_waf_failing(moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock,
                                   proxy: FaultProxy) -> tuple[str, Daemon]:
    """A daemon that has blocked the scanner for 15 minutes, after which every IP set update fails
    (timers fired by `tick` only, one attempt per unblock); the IP set's ARN and the daemon."""
    arn = await make_ip_set(moto)
    daemon: Daemon = await aws_daemon(block_policy(arn, "15m"),
                                      engine={"timer_interval": "1d", "retry_attempts": 1})
    await scanner(daemon, clock)
    proxy.add(Rule("UpdateIPSet", times=None, code="WAFInternalErrorException", status=500))
    return arn, daemon


async def test_a_block_is_removed_at_its_expiry_not_before_and_the_unblock_is_audited(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto, ["192.0.2.1/32"])
    daemon: Daemon = await aws_daemon(block_policy(arn, "15m"))
    await scanner(daemon, clock)
    [block] = await audit(daemon, "waf.block_ip")
    assert block.outcome is Outcome.SUCCEEDED, block.detail
    assert await addresses(moto, arn) == ["192.0.2.1/32", ADDRESS]
    entry = await daemon.deps.store.get_waf_block(arn, ADDRESS)
    assert entry is not None and entry.expires_at == clock.now() + timedelta(minutes=15)

    assert await tick(daemon, clock, timedelta(minutes=14, seconds=59)) == 0
    assert await addresses(moto, arn) == ["192.0.2.1/32", ADDRESS]

    assert await tick(daemon, clock, timedelta(seconds=1)) == 1
    assert await addresses(moto, arn) == ["192.0.2.1/32"]
    [unblock] = await audit(daemon, "waf.unblock_ip")
    assert (unblock.origin, unblock.verdict, unblock.outcome) == ("system", Verdict.ALLOW, Outcome.SUCCEEDED)
    assert unblock.detail["removed"] is True and unblock.target == "203.0.113.7"
    assert (unblock.incident_id, unblock.alert_id, unblock.policy) == (block.incident_id, block.alert_id, block.policy)
    assert unblock.params == {"ip_set_arn": arn, "address": ADDRESS, "only_if_expired": True}
    events = [e for e in await daemon.deps.store.timeline(block.incident_id) if e.request_id == unblock.request_id]
    assert [e.kind for e in events] == ["decided", "executed"]
    assert events[1].message == "waf.unblock_ip on 203.0.113.7: succeeded"
    assert await daemon.deps.store.get_waf_block(arn, ADDRESS) is None
    assert [h.operation for h in proxy.log].count("UpdateIPSet") == 2  # the block, the unblock
    await tick(daemon, clock, timedelta(hours=1))  # (the P3 matrix's 30-minute and 1-hour steps fire)
    assert len(await audit(daemon, "waf.unblock_ip")) == 1  # nothing left to expire
    assert [h.operation for h in proxy.log].count("UpdateIPSet") == 2


async def test_a_failed_unblock_stays_due_and_is_retried(moto: MotoClient, aws_daemon: DaemonFactory,
                                                         clock: FakeClock, proxy: FaultProxy) -> None:
    arn, daemon = await blocked_then_waf_failing(moto, aws_daemon, clock, proxy)

    assert await tick(daemon, clock, timedelta(minutes=15)) == 1
    [failed] = await audit(daemon, "waf.unblock_ip")
    assert failed.outcome is Outcome.FAILED and failed.failure_reason is FailureReason.SERVER_ERROR
    assert await addresses(moto, arn) == [ADDRESS]
    assert await daemon.deps.store.get_waf_block(arn, ADDRESS) is not None  # still due

    proxy.rules.clear()
    assert await tick(daemon, clock, timedelta(seconds=59)) == 0  # the next attempt is a minute later
    assert await tick(daemon, clock, timedelta(seconds=1)) == 1
    first, done = await audit(daemon, "waf.unblock_ip")
    assert first.request_id == failed.request_id and done.request_id != failed.request_id
    assert done.outcome is Outcome.SUCCEEDED
    assert await addresses(moto, arn) == []
    assert await daemon.deps.store.get_waf_block(arn, ADDRESS) is None


async def test_an_address_someone_removed_already_expires_without_a_waf_change(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto)
    daemon: Daemon = await aws_daemon(block_policy(arn, "15m"))
    await scanner(daemon, clock)
    name, set_id = arn.rsplit("/", 2)[1:]
    waf = await moto("wafv2")
    token = (await waf.get_ip_set(Name=name, Scope="REGIONAL", Id=set_id))["LockToken"]
    await waf.update_ip_set(Name=name, Scope="REGIONAL", Id=set_id, Addresses=[], LockToken=token)
    proxy.log.clear()

    assert await tick(daemon, clock, timedelta(minutes=15)) == 1

    [unblock] = await audit(daemon, "waf.unblock_ip")
    assert unblock.outcome is Outcome.SUCCEEDED and unblock.detail["removed"] is False
    assert "UpdateIPSet" not in proxy.operations()
    assert await daemon.deps.store.get_waf_block(arn, ADDRESS) is None


async def test_people_hear_of_a_block_that_will_not_come_out(moto: MotoClient, aws_daemon: DaemonFactory,
                                                               clock: FakeClock, proxy: FaultProxy) -> None:
    arn, daemon = await blocked_then_waf_failing(moto, aws_daemon, clock, proxy)

    fired = [await tick(daemon, clock, delta) for delta in (timedelta(minutes=15), timedelta(minutes=1),
                                                            timedelta(minutes=2), timedelta(minutes=4))]

    assert fired == [1, 1, 1, 1] and len(await audit(daemon, "waf.unblock_ip")) == 4
    [block] = await audit(daemon, "waf.block_ip")
    escalated = [e for e in await daemon.deps.store.timeline(block.incident_id) if e.kind == "escalated"]
    assert len(escalated) == 1 and "still in place after 3 attempts" in escalated[0].message
    assert await addresses(moto, arn) == [ADDRESS]  # still trying: due again 8 minutes later
    proxy.rules.clear()
    # 30 minutes in: the unblock, and the P3 matrix's 30-minute step (the runbook's team lead).
    assert await tick(daemon, clock, timedelta(minutes=8)) == 2 and await addresses(moto, arn) == []


async def test_a_reblock_extends_the_block_instead_of_adding_an_expiry(moto: MotoClient, aws_daemon: DaemonFactory,
                                                                       clock: FakeClock) -> None:
    arn = await make_ip_set(moto)
    daemon: Daemon = await aws_daemon(block_policy(arn, "15m"), guardrails={"default_cooldown": "0s"})
    await scanner(daemon, clock, fingerprint="fp-scan-1", group="scan-1")
    clock.advance(timedelta(minutes=10))
    # Another incident (one incident makes one request per plan): still scanning, 15 more minutes.
    await scanner(daemon, clock, fingerprint="fp-scan-2", group="scan-2")

    first, again = await audit(daemon, "waf.block_ip")
    assert first.detail["added"] is True and again.detail["already_present"] is True
    assert again.detail["expires_at"] == (clock.now() + timedelta(minutes=15)).isoformat()
    assert await tick(daemon, clock, timedelta(minutes=5)) == 0  # the first expiry was replaced
    assert await addresses(moto, arn) == [ADDRESS]
    assert await tick(daemon, clock, timedelta(minutes=10)) == 1
    assert await addresses(moto, arn) == []
    assert len(await audit(daemon, "waf.unblock_ip")) == 1


async def test_the_kill_switch_does_not_stop_an_expiry(moto: MotoClient, aws_daemon: DaemonFactory,
                                                       clock: FakeClock) -> None:
    """Decision: an expiry only lifts remediator's own block on the agreed schedule, so it runs;
    new blocks are stopped."""
    arn = await make_ip_set(moto)
    daemon: Daemon = await aws_daemon(block_policy(arn, "15m"))
    await scanner(daemon, clock)
    await daemon.deps.coordination.set_kill_switch(KillSwitch(True, "alice", "WAF change freeze", clock.now()))
    await scanner(daemon, clock, source_ip="198.51.100.23", fingerprint="fp-other")

    assert await tick(daemon, clock, timedelta(minutes=15)) == 1

    assert await addresses(moto, arn) == []
    [unblock] = await audit(daemon, "waf.unblock_ip")
    assert unblock.outcome is Outcome.SUCCEEDED and unblock.decision_reason is DecisionReason.ALLOWED
    assert unblock.decision_detail == ("kill switch turned on by alice: WAF change freeze; let through: an expiry "
                                       "only lifts remediator's own restriction")
    _, stopped = await audit(daemon, "waf.block_ip")
    assert stopped.target == "198.51.100.23" and stopped.decision_reason is DecisionReason.KILL_SWITCH


async def test_a_protected_address_is_denied_by_the_guardrails_and_never_sent_to_waf(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    arn = await make_ip_set(moto)
    protected = [{"action": "waf.*", "targets": ["203.0.113.0/24"], "reason": "partner clinic's NAT"}]
    daemon: Daemon = await aws_daemon(block_policy(arn), guardrails={"protected": protected})

    await scanner(daemon, clock, source_ip="203.0.113.50")

    [denied] = await audit(daemon, "waf.block_ip")
    assert (denied.verdict, denied.decision_reason, denied.outcome) == (
        Verdict.DENY, DecisionReason.PROTECTED_TARGET, Outcome.NOT_RUN)
    assert denied.decision_detail == "203.0.113.50 is protected by 203.0.113.0/24 (partner clinic's NAT)"
    [decided] = [e for e in await daemon.deps.store.timeline(denied.incident_id) if e.request_id == denied.request_id]
    assert decided.data["reason"] == "protected_target" and "partner clinic's NAT" in decided.message
    assert "UpdateIPSet" not in proxy.operations() and await addresses(moto, arn) == []
    assert await daemon.deps.store.get_waf_block(arn, "203.0.113.50/32") is None


async def test_a_never_block_address_is_refused_before_any_waf_call(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    """`aws.waf.never_block` is the action's own last line of defence, after the guardrails."""
    arn = await make_ip_set(moto)
    daemon: Daemon = await aws_daemon(block_policy(arn), aws={"endpoint_url": proxy.url, "max_attempts": 2,
                                                              "waf": {"never_block": ["198.51.100.0/24"]}})

    await scanner(daemon, clock, source_ip="198.51.100.9")

    [refused] = await audit(daemon, "waf.block_ip")
    assert refused.verdict is Verdict.ALLOW and refused.outcome is Outcome.FAILED
    assert refused.failure_reason is FailureReason.PRECHECK_FAILED
    assert "inside the never-block range 198.51.100.0/24" in refused.detail["error"]
    assert proxy.log == [] and await addresses(moto, arn) == []


async def test_an_expiry_unblock_leaves_an_extended_or_foreign_block_alone(
        moto: MotoClient, ctx_for: CtxFactory, deps: ActionDeps, ledger: InMemoryBlockLedger, clock: FakeClock,
        proxy: FaultProxy) -> None:
    """`only_if_expired` is checked under the target's lease, where a concurrent re-block cannot slip in."""
    arn = await make_ip_set(moto, [ADDRESS])
    unblock = UnblockIp()
    params = unblock_params(WafBlock(arn, ADDRESS, clock.now(), clock.now()))

    foreign = await unblock.precheck(unblock.Params(**params), ctx_for(unblock, params))
    assert foreign == "remediator holds no block of 203.0.113.7/32 in this IP set: left alone"

    await ledger.record(WafBlock(arn, ADDRESS, clock.now(), clock.now() + timedelta(minutes=5)))
    ctx = ctx_for(unblock, params)
    assert "not removed yet" in (await unblock.precheck(unblock.Params(**params), ctx) or "")
    execution = await unblock.run(unblock.Params(**params), ctx)
    assert execution.reason is FailureReason.PRECHECK_FAILED and await unblock.plan_calls(
        unblock.Params(**params), ctx) == []
    assert proxy.log == [] and await addresses(moto, arn) == [ADDRESS]

    clock.advance(timedelta(minutes=5))
    assert (await unblock.run(unblock.Params(**params), ctx_for(unblock, params))).outcome is Outcome.SUCCEEDED
    assert await addresses(moto, arn) == [] and ledger.entries() == []


async def test_in_dry_run_an_expiry_is_planned_and_recorded_but_the_block_stays(
        moto: MotoClient, aws_daemon: DaemonFactory, clock: FakeClock, proxy: FaultProxy) -> None:
    """A block left from enforce mode (its request and alert are not in this store: the expiry
    still has a record to land on) stays until enforce mode returns."""
    arn = await make_ip_set(moto, [ADDRESS])
    daemon: Daemon = await aws_daemon(block_policy(arn), mode="dry-run")
    await daemon.deps.store.record_waf_block(WafBlock(arn, ADDRESS, clock.now(), clock.now() + timedelta(minutes=15),
                                                      "req-from-before", "INC-2026-00042"))

    assert await tick(daemon, clock, timedelta(minutes=15)) == 1

    [planned] = await audit(daemon, "waf.unblock_ip")
    assert (planned.mode, planned.outcome, planned.incident_id) == ("dry-run", Outcome.DRY_RUN, "INC-2026-00042")
    assert [c["operation"] for c in planned.detail["would_call"]] == ["UpdateIPSet"]
    assert "UpdateIPSet" not in proxy.operations() and await addresses(moto, arn) == [ADDRESS]
    assert await daemon.deps.store.get_waf_block(arn, ADDRESS) is not None
    assert await tick(daemon, clock, timedelta(minutes=1)) == 1  # still due: tried again
