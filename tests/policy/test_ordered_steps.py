"""Ordered steps at load time: `when`, `after` and `{previous.*}` are checked, every problem
named with its file, policy and step, and `remediator check` refuses the directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from remediator.actions.registry import default_registry
from remediator.errors import PolicyError
from remediator.policy.loader import load_policies
from tests.conftest import ROOT

HEAD = """
name: {name}
severity: P3
match: {{alertname: ApiLoginBruteForce}}
actions:
"""
BLOCK = """  - type: waf.block_ip
    name: block
    params: {ip_set_arn: "arn:aws:wafv2:eu-west-1:123456789012:regional/ipset/b/a1b2c3d4", address: "{labels.ip}",
             duration: 1h}
"""


def notify(text: str = "told", **keys: str) -> str:
    extra = "".join(f"    {k}: {v}\n" for k, v in keys.items())
    return f"  - type: notify.webhook\n{extra}    params: {{to: security, text: \"{text}\"}}\n"


# policy (name, steps) → the problem it must report, naming policy and step
BROKEN: dict[str, tuple[str, str]] = {
    "when-on-the-first-step": (notify(when="succeeded") + BLOCK,
                               "actions[0] (notify.webhook).when: the first step has no previous step"),
    "unknown-when": (BLOCK + notify(when="maybe"),
                     "actions[1].when: Input should be 'succeeded', 'failed' or 'always'"),
    "after-an-unknown-step": (BLOCK + notify(when="failed", after="blok"),
                              "actions[1] (notify.webhook).after: no earlier step is named 'blok' "
                              "(earlier names: block)"),
    "after-a-later-step": (notify(when="failed", after="block") + BLOCK,
                           "actions[0] (notify.webhook).after: no earlier step is named 'block' (earlier names: none)"),
    "after-without-when": (BLOCK + notify(after="block"),
                           "actions[1] (notify.webhook).after: needs `when`"),
    "previous-without-when": (BLOCK + notify(text="{previous.reason}"),
                              "actions[1] (notify.webhook).params: {previous.*} needs `when`"),
    "unknown-previous-field": (BLOCK + notify(text="{previous.secret}", when="failed"),
                               "actions[1].params.text: {previous.secret} is not a known reference"),
    "a-step-name-twice": (BLOCK + BLOCK.replace("waf.block_ip", "waf.unblock_ip").replace("    duration: 1h}", "}")
                          .replace(",\n             duration: 1h}", "}"),
                          "actions[1] (waf.unblock_ip).name: 'block' is already the name of actions[0]"),
    "when-with-verify": (BLOCK + notify(when="succeeded") + "verify: {after: 5m}\n",
                         "actions[1] (notify.webhook).when: cannot be combined with `verify`"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_ordering_problem_names_the_policy_and_the_step(tmp_path: Path, case: str) -> None:
    steps, fragment = BROKEN[case]
    (tmp_path / f"{case}.yaml").write_text(HEAD.format(name=case) + steps)
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    assert any(f"{case}.yaml: policies[0] ({case})" in p and fragment in p for p in raised.value.problems), \
        raised.value.problems


def test_every_ordering_problem_of_one_policy_is_reported_together(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(HEAD.format(name="p") + notify(when="always") + BLOCK
                                     + notify(when="failed", after="nope"))
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    [problem] = raised.value.problems
    assert "actions[0] (notify.webhook).when" in problem and "actions[2] (notify.webhook).after" in problem


def test_steps_without_when_start_at_once_and_with_when_wait_for_the_named_or_previous_step(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(HEAD.format(name="p") + BLOCK + notify(when="succeeded")
                                     + notify(when="failed", after="block") + notify()
                                     + notify(when="always"))
    [policy] = load_policies(tmp_path, default_registry())
    assert policy.first_steps == [0, 3]
    assert [policy.depends_on(i) for i in range(5)] == [None, 0, 0, None, 3]
    assert policy.dependants(0) == [1, 2] and policy.dependants(3) == [4] and policy.dependants(1) == []


def test_a_verifying_policy_still_starts_with_its_first_step_only() -> None:
    policies = {p.name: p for p in load_policies(ROOT / "policies", default_registry())}
    assert policies["api-5xx-redeploy"].first_steps == [0]
    assert policies["login-brute-force-block"].first_steps == [0]
    assert policies["login-brute-force-block"].dependants(0) == [1, 2]
    assert policies["guardduty-instance-compromised"].first_steps == [0, 1]
    assert policies["guardduty-instance-compromised"].dependants(0) == [2]


def test_remediator_check_refuses_a_misordered_policy_naming_it_and_its_step(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(HEAD.format(name="first-waits") + notify(when="succeeded") + BLOCK)
    result = subprocess.run([sys.executable, "-m", "remediator", "check", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 1, result.stdout
    assert "policies[0] (first-waits): actions[0] (notify.webhook).when: the first step has no previous step" \
        in result.stderr
