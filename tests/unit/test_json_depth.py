"""Nesting is measured on the text, before json.loads recurses into it."""

from __future__ import annotations

import pytest

from comfygate import json_depth
from comfygate.json_depth import TooDeep, check_depth


def test_a_document_at_the_limit_parses_and_one_level_more_is_refused() -> None:
    at_limit = "[" * 64 + "]" * 64
    assert json_depth.loads(at_limit) is not None
    with pytest.raises(TooDeep) as err:
        check_depth("[" + at_limit + "]")
    assert err.value.pointer == "/"


def test_brackets_inside_strings_are_not_structure() -> None:
    text = '{"a": "[[[[{{{{", "b\\"[[[": "\\\\", "c": [["x]]]"]]}'
    check_depth(text, max_depth=3)
    assert json_depth.loads(text)["c"] == [["x]]]"]]


@pytest.mark.parametrize(
    ("text", "pointer"),
    [
        ('{"ok": {"x": 1}, "deep": [[[[1]]]], "after": 1}', "/deep"),
        ('{"a/b~c": {"k": [[1]]}}', "/a~1b~0c"),
        ('{"a": "v", "b": [[[1]]]}', "/b"),
        ('{"\\u00e9": [[[1]]]}', "/\u00e9"),
    ],
)
def test_the_member_the_deep_part_is_under_is_named(text: str, pointer: str) -> None:
    with pytest.raises(TooDeep) as err:
        check_depth(text, max_depth=3)
    assert err.value.pointer == pointer


def test_thousands_of_levels_are_refused_without_recursion() -> None:
    with pytest.raises(TooDeep):
        json_depth.loads('{"m": ' + "[" * 100_000 + "]" * 100_000 + "}")
