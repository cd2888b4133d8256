"""The README's actions section is the registry rendered: regenerated here, it must not differ."""

from __future__ import annotations

from remediator.actions import catalog
from remediator.actions.registry import default_registry
from tests.conftest import ROOT

REGISTRY = default_registry()
README_COMMAND = f".venv/bin/{catalog.README_COMMAND}"


def test_the_readme_actions_section_is_generated_from_the_registry() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == catalog.with_readme_section(readme, catalog.markdown(REGISTRY)), \
        f"README.md's actions section differs from the registry: run `{README_COMMAND}` and commit README.md"


def test_markdown_has_one_row_and_one_parameter_line_per_action() -> None:
    section = catalog.markdown(REGISTRY)
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    params = [line for line in section.splitlines() if line.startswith("- `")]
    assert [r.split("`")[1] for r in rows] == REGISTRY.names() == [p.split("`")[1] for p in params]
    scale = next(p for p in params if p.startswith("- `ecs.scale_service`"))
    assert "`step` (int -100..100, required)" in scale and "`verify_alarm` (str, optional)" in scale
    assert "`type` (A / AAAA / CNAME, required)" in next(p for p in params if "route53" in p)


def test_type_labels_read_as_policy_authors_write_values() -> None:
    block = REGISTRY.get("waf.block_ip")
    assert block is not None
    labels = {p.name: p.type for p in catalog.param_docs(block)}
    assert labels == {"ip_set_arn": "str", "address": "IP network", "duration": "duration", "allow_prefix": "bool"}
    evidence = REGISTRY.get("s3.preserve_evidence")
    assert evidence is not None
    assert {p.name: p.usage for p in catalog.param_docs(evidence)}["retention_mode"] == "default GOVERNANCE"
    report = REGISTRY.get("postgres.report")
    assert report is not None
    assert {p.name: p.type for p in catalog.param_docs(report)}["args"] == "map of str to bool or int or float or str"
