"""Every registered action honours the plugin contract (Cloud Custodian's doc-example test)."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from remediator.actions.base import AnyAction
from remediator.actions.registry import default_registry

ACTIONS = list(default_registry())


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_the_docstring_example_is_a_valid_step(action: AnyAction) -> None:
    example = yaml.safe_load(action.example_yaml())
    assert example["type"] == action.type_name
    rendered = {k: "erp" if isinstance(v, str) and v.startswith("{") else v for k, v in example["params"].items()}
    params = action.Params.model_validate(rendered)
    assert action.target(params)
    # What a request stores validates back into the same parameters (verify re-reads it).
    assert action.Params.model_validate(params.model_dump(mode="json")) == params


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.type_name)
def test_unknown_parameters_are_refused_and_permissions_are_declared(action: AnyAction) -> None:
    example = yaml.safe_load(action.example_yaml())
    rendered = {k: "erp" if isinstance(v, str) and v.startswith("{") else v for k, v in example["params"].items()}
    with pytest.raises(ValidationError):
        action.Params.model_validate({**rendered, "surprise": 1})
    assert action.permissions or action.type_name == "notify.webhook"
