"""Policy loading: one invalid file per kind of problem, all reported at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from remediator.actions.registry import default_registry
from remediator.errors import PolicyError
from remediator.policy.loader import load_policies
from tests.conftest import ROOT

VALID = """
name: {name}
description: ok
severity: P2
match:
  source: alertmanager
  alertname: PostgresTooManyConnections
actions:
  - type: notify.webhook
    params: {{to: oncall, text: "{{annotations.summary}}"}}
"""

# file content → a fragment the error must contain (file name and policy path are checked too)
BROKEN: dict[str, tuple[str, str]] = {
    "unknown-top-key": (VALID.format(name="a") + "colour: red\n", "policies[0] (a).colour: unknown key"),
    "bad-severity": (VALID.format(name="b").replace("P2", "P7"), "policies[0] (b).severity"),
    "bad-name": (VALID.format(name="Bad Name!"), "policies[0] (Bad Name!).name"),
    "no-actions": ("name: c\nseverity: P3\nmatch: {alertname: X}\nactions: []\n", "policies[0] (c).actions"),
    "unknown-match-key": (VALID.format(name="d").replace("source:", "sauce:"), "match.sauce: unknown key"),
    "bad-status": (VALID.format(name="e").replace("source: alertmanager", "status: pending"), "match.status"),
    "bad-regex": (VALID.format(name="f").replace("alertname: PostgresTooManyConnections",
                                                 "alertname: {regex: '(unclosed'}"), "invalid regular expression"),
    "bad-label-condition": (VALID.format(name="g").replace("source: alertmanager",
                                                           "labels: {env: {maybe: 1}}"), "match.labels.env"),
    "unknown-action": (VALID.format(name="h").replace("notify.webhook", "kubectl.delete"),
                       "actions[0].type: unknown action 'kubectl.delete'"),
    "unknown-param": (VALID.format(name="i").replace("to: oncall", "to: oncall, url: http://x"),
                      "actions[0].params.url: unknown parameter of notify.webhook"),
    "bad-param-value": (VALID.format(name="j").replace("to: oncall", 'to: "no spaces allowed"'),
                        "actions[0].params.to: String should match pattern"),
    "missing-param": (VALID.format(name="k").replace("to: oncall, ", ""), "actions[0].params.to: Field required"),
    "bad-template": (VALID.format(name="l").replace("annotations.summary", "secrets.password"),
                     "actions[0].params.text: {secrets.password} is not a known reference"),
    "unbalanced-brace": (VALID.format(name="m").replace('"{annotations.summary}"', '"{labels.x"'),
                         "actions[0].params.text: '{labels.x': unbalanced brace"),
    "bad-guardrail": (VALID.format(name="n") + "    guardrails: {cooldown: soon}\n",
                      "actions[0].guardrails.cooldown"),
    "bad-verify": (VALID.format(name="o") + "verify: {after: 10m, timeout: 5m}\n", "verify.timeout must not"),
    "not-a-mapping": ("- just\n- a list of strings\n", "a policy must be a mapping"),
    "bad-yaml": ("name: [unclosed\n", "not valid YAML"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_problem_is_reported_with_file_and_policy_path(tmp_path: Path, case: str) -> None:
    content, fragment = BROKEN[case]
    (tmp_path / f"{case}.yaml").write_text(content)
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    assert any(fragment in p and f"{case}.yaml" in p for p in raised.value.problems), raised.value.problems


def test_every_problem_of_a_directory_is_reported_at_once(tmp_path: Path) -> None:
    for case, (content, _) in BROKEN.items():
        (tmp_path / f"{case}.yaml").write_text(content)
    (tmp_path / "good.yaml").write_text(VALID.format(name="good"))
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    for case, (_, fragment) in BROKEN.items():
        assert any(fragment in p and f"{case}.yaml" in p for p in raised.value.problems), case


SCALE = """
name: api-scale-out
severity: P3
match: {alertname: ApiSaturated}
actions:
  - type: ecs.scale_service
    params: {cluster: erp-prod, service: SERVICE, step: 2, min: 5, max: 2}
"""


def test_a_whole_model_check_is_reported_when_nothing_is_templated(tmp_path: Path) -> None:
    """min > max is a check over several fields: with every value given, it fails at load time."""
    (tmp_path / "scale.yaml").write_text(SCALE.replace("SERVICE", "erp-api"))
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    assert any("actions[0].params: min must not exceed max" in p for p in raised.value.problems), \
        raised.value.problems


def test_a_whole_model_check_waits_for_the_alert_when_a_value_is_templated(tmp_path: Path) -> None:
    # The templated value may be the one the check is about: the plan validates it with the alert.
    (tmp_path / "scale.yaml").write_text(SCALE.replace("SERVICE", '"{labels.service}"'))
    assert [p.name for p in load_policies(tmp_path, default_registry())] == ["api-scale-out"]


def test_duplicate_names_across_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VALID.format(name="same"))
    (tmp_path / "b.yaml").write_text(VALID.format(name="same"))
    with pytest.raises(PolicyError) as raised:
        load_policies(tmp_path, default_registry())
    assert raised.value.problems == [f"{tmp_path / 'b.yaml'}: policies[0] (same): name already used in "
                                     f"{tmp_path / 'a.yaml'}"]


def test_a_file_may_hold_several_policies_and_templates_are_kept_for_later(tmp_path: Path) -> None:
    (tmp_path / "many.yaml").write_text("policies:\n" + "".join(
        "  - " + VALID.format(name=n).strip().replace("\n", "\n    ") + "\n" for n in ("one", "two")))
    policies = load_policies(tmp_path, default_registry())
    assert [p.name for p in policies] == ["one", "two"]
    assert policies[0].actions[0].params["text"] == "{annotations.summary}"


def test_the_bundled_policies_load() -> None:
    assert load_policies(ROOT / "policies", default_registry())


def test_remediator_check_exits_non_zero_listing_every_problem(tmp_path: Path) -> None:
    for case in ("unknown-param", "bad-severity"):
        (tmp_path / f"{case}.yaml").write_text(BROKEN[case][0])
    result = subprocess.run([sys.executable, "-m", "remediator", "check", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 1  # the input is bad (2 is for usage)
    assert "unknown-param.yaml" in result.stderr and "bad-severity.yaml" in result.stderr
    ok = subprocess.run([sys.executable, "-m", "remediator", "check", str(ROOT / "policies")],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0 and "policies OK" in ok.stdout


def test_a_fixtures_folder_is_not_read_as_policies(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text(VALID.format(name="ok"))
    (tmp_path / "fixtures").mkdir()
    (tmp_path / "fixtures" / "ok.yaml").write_text("cases: []\n")  # not a policy: ignored
    (tmp_path / "team" / "fixtures").mkdir(parents=True)
    (tmp_path / "team" / "fixtures" / "more.yaml").write_text("cases: []\n")
    (tmp_path / "team" / "extra.yaml").write_text(VALID.format(name="extra"))
    assert [p.name for p in load_policies(tmp_path, default_registry())] == ["ok", "extra"]
