from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from comfygate.contracts import MAX_SAFE_INTEGER, Workflow
from comfygate.contracts.metaschema import contract_problems
from comfygate.errors import ContractError

from .conftest import contract

Load = Callable[..., Workflow]
BIND = {"node": "1", "input": "color"}


def with_settings(**settings: Any) -> dict[str, Any]:
    c = contract()
    c["x-comfygate"] = settings
    return c


@pytest.mark.parametrize("key", ["warm_up", "review", "stages"])
def test_reserved_keys_are_not_supported_yet(load: Load, key: str) -> None:
    with pytest.raises(ContractError) as exc:
        load(contract=with_settings(**{key: {}}))
    assert f"x-comfygate.{key} is reserved: not supported yet" in str(exc.value)
    assert "contract.json" in str(exc.value)


@pytest.mark.parametrize(
    "bind",
    [
        "1",
        {"node": "1"},
        {"node": 1, "input": "color"},
        {"node": "1", "input": "color", "extra": True},
        [],
        [{"node": "1", "input": "color"}, {"input": "width"}],
    ],
)
def test_x_bind_shape(load: Load, bind: Any) -> None:
    c = contract(color={"type": "integer", "x-bind": bind})
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    assert "parameter 'color' at /x-bind: x-bind must be" in str(exc.value)


def test_x_bind_is_required(load: Load) -> None:
    with pytest.raises(ContractError, match="parameter 'color': 'x-bind' is a required property"):
        load(contract=contract(color={"type": "integer"}))


def test_x_kind_unknown_value(load: Load) -> None:
    c = contract(color={"type": "string", "x-kind": "video", "x-bind": BIND})
    with pytest.raises(ContractError, match=r"parameter 'color' at /x-kind: 'video' is not one of"):
        load(contract=c)


@pytest.mark.parametrize(("key", "value"), [("x-random", "yes"), ("x-advanced", 1)])
def test_flags_are_booleans(load: Load, key: str, value: Any) -> None:
    c = contract(color={"type": "integer", key: value, "x-bind": BIND})
    with pytest.raises(ContractError, match=f"parameter 'color' at /{key}: .* is not of type"):
        load(contract=c)


def test_unknown_x_keywords_are_typos(load: Load) -> None:
    c = contract(color={"type": "integer", "x-randon": True, "x-bind": BIND})
    c["x-comfygat"] = {}
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    message = str(exc.value)
    assert "parameter 'color': unknown keyword 'x-randon'" in message
    assert "top level: unknown keyword 'x-comfygat'" in message


def test_unknown_settings_key(load: Load) -> None:
    with pytest.raises(ContractError, match="Additional properties are not allowed"):
        load(contract=with_settings(retries=2))


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"pool": "has space"}, "/x-comfygate/pool"),
        ({"timeout_s": 0}, "/x-comfygate/timeout_s"),
        ({"max_attempts": 0}, "/x-comfygate/max_attempts"),
        ({"queue_ttl_s": -1}, "/x-comfygate/queue_ttl_s"),
        ({"retry_on_timeout": "yes"}, "/x-comfygate/retry_on_timeout"),
        ({"warmup": "yes"}, "/x-comfygate/warmup"),
        ({"outputs": []}, "/x-comfygate/outputs"),
        ({"examples": [{"title": "no params"}]}, "/x-comfygate/examples/0"),
        ({"title": ""}, "/x-comfygate/title"),
    ],
)
def test_settings_shapes(load: Load, settings: dict[str, Any], where: str) -> None:
    with pytest.raises(ContractError, match=where):
        load(contract=with_settings(**settings))


def test_additional_properties_true_is_refused(load: Load) -> None:
    c = contract()
    c["additionalProperties"] = True
    with pytest.raises(ContractError, match="additionalProperties is always false"):
        load(contract=c)
    c["additionalProperties"] = False
    assert load(contract=c).name == "wf"


def test_not_a_json_schema(load: Load) -> None:
    c = contract(color={"type": "integr", "x-bind": BIND})
    with pytest.raises(ContractError, match="parameter 'color' at /type"):
        load(contract=c)


def test_other_drafts_are_refused(load: Load) -> None:
    c = contract()
    c["$schema"] = "http://json-schema.org/draft-07/schema#"
    with pytest.raises(ContractError, match="/\\$schema"):
        load(contract=c)


@pytest.mark.parametrize("extra", [{}, {"x-random": True}])
def test_integer_maximum_above_2_53_is_refused(load: Load, extra: dict[str, Any]) -> None:
    c = contract(color={"type": "integer", "maximum": 2**64 - 1, "x-bind": BIND, **extra})
    with pytest.raises(ContractError) as exc:
        load(contract=c)
    assert "parameter 'color': maximum 18446744073709551615 exceeds 2^53-1" in str(exc.value)


def test_integer_maximum_of_2_53_minus_1_is_fine(load: Load) -> None:
    c = contract(color={"type": "integer", "maximum": MAX_SAFE_INTEGER, "x-bind": BIND})
    assert load(contract=c).parameters["color"].schema["maximum"] == MAX_SAFE_INTEGER


def test_integer_minimum_below_minus_2_53_is_refused(load: Load) -> None:
    c = contract(color={"type": "integer", "exclusiveMinimum": -(2**60), "x-bind": BIND})
    with pytest.raises(ContractError, match=r"exclusiveMinimum .* is below"):
        load(contract=c)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "number"}, 'x-random needs "type": "integer"'),
        ({"type": "integer", "default": 3}, "x-random and default exclude each other"),
        ({"type": "integer", "multipleOf": 2}, "x-random allows only minimum/maximum"),
        ({"type": "integer", "minimum": 5, "maximum": 4}, "x-random range 5..4 is empty"),
    ],
)
def test_x_random_rules(load: Load, schema: dict[str, Any], expected: str) -> None:
    c = contract(color={**schema, "x-random": True, "x-bind": BIND})
    with pytest.raises(ContractError, match=f"parameter 'color': {expected}"):
        load(contract=c)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "integer"}, 'x-kind "image" needs "type": "string"'),
        ({"type": "string", "default": "a"}, 'x-kind "image" cannot have a default'),
    ],
)
def test_x_kind_image_rules(load: Load, schema: dict[str, Any], expected: str) -> None:
    c = contract(color={**schema, "x-kind": "image", "x-bind": BIND})
    with pytest.raises(ContractError, match=expected):
        load(contract=c)


def test_contract_problems_lists_each_once() -> None:
    c = contract(color={"type": "integer", "x-kind": "video", "x-bind": "1"})
    c["x-comfygate"] = {"cost": 1, "pool": 3}
    problems = contract_problems(c)
    assert len(problems) == len(set(problems)) == 4
