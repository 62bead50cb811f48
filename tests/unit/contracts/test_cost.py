from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from comfygate.contracts import FREE, Cost, Workflow
from comfygate.errors import ContractError

from .conftest import contract

Load = Callable[..., Workflow]
TXT2IMG_LIKE = {
    "base": 1,
    "per": [
        {"param": "steps", "factor": 0.1},
        {"params": ["width", "height"], "factor": 1e-6},
        {"params": ["steps", "batch_size"], "factor": 0.5},
    ],
}


def test_cost_is_base_plus_each_factor_times_its_parameters() -> None:
    cost = Cost.parse(TXT2IMG_LIKE)
    params = {"steps": 20, "width": 1000, "height": 500, "batch_size": 2}
    assert cost.of(params) == pytest.approx(1 + 2.0 + 0.5 + 20.0)


def test_a_term_whose_parameter_is_left_out_adds_nothing() -> None:
    cost = Cost.parse(TXT2IMG_LIKE)
    assert cost.of({"steps": 10}) == pytest.approx(1 + 1.0)


def test_non_numeric_values_add_nothing_and_booleans_are_not_numbers() -> None:
    cost = Cost.parse({"per": [{"param": "n", "factor": 3}]})
    assert cost.of({"n": True}) == 0
    assert cost.of({"n": "5"}) == 0
    assert cost.of({"n": 2.5}) == pytest.approx(7.5)


def test_a_workflow_without_cost_is_free(load: Load) -> None:
    wf = load(contract=contract())
    assert wf.cost is FREE
    assert wf.cost.of({"width": 512}) == 0


def with_cost(cost: Any, **properties: Any) -> dict[str, Any]:
    c = contract(**properties)
    c["x-comfygate"] = {"cost": cost}
    return c


def test_the_loader_reads_the_cost(load: Load) -> None:
    wf = load(contract=with_cost({"base": 2, "per": [{"param": "width", "factor": 0.5}]}))
    assert wf.cost.of({"width": 64, "color": 0}) == pytest.approx(34)


@pytest.mark.parametrize(
    ("cost", "message"),
    [
        ({"base": -1}, "-1 is less than the minimum of 0"),
        ({"base": "1"}, "'1' is not of type 'number'"),
        ({"formula": "steps * 2"}, "Additional properties are not allowed"),
        ({"per": [{"factor": 1}]}, 'a cost term is {"param": NAME'),
        ({"per": [{"param": "width", "params": ["width"], "factor": 1}]}, "a cost term is"),
        ({"per": [{"param": "width"}]}, "'factor' is a required property"),
        ({"per": [{"params": [], "factor": 1}]}, "should be non-empty"),
        ({"per": [{"param": "nope", "factor": 1}]}, "x-comfygate.cost names no parameter 'nope'"),
        ({"per": [{"param": "label", "factor": 1}]}, "parameter 'label' is not an integer"),
    ],
)
def test_a_bad_cost_is_refused_with_the_reason(load: Load, cost: Any, message: str) -> None:
    label = {"type": "string", "default": "x", "x-bind": {"node": "4", "input": "filename_prefix"}}
    with pytest.raises(ContractError) as exc:
        load(contract=with_cost(cost, label=label))
    assert message in str(exc.value)
