from __future__ import annotations

from typing import Any

import pytest

from comfygate.errors import InvalidParams
from comfygate.jobs.metadata import MAX_BYTES, MAX_DEPTH, check_metadata


def nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def refusal(metadata: Any) -> list[dict[str, str]]:
    with pytest.raises(InvalidParams) as refused:
        check_metadata(metadata)
    details: list[dict[str, str]] = refused.value.details
    return details


def test_plain_metadata_passes_unchanged() -> None:
    metadata = {"order": 7, "tags": ["a", "b"], "ok": True, "note": "two\nlines", "x": None}
    assert check_metadata(metadata) is metadata
    assert check_metadata(nested(MAX_DEPTH)) == nested(MAX_DEPTH)


@pytest.mark.parametrize(
    ("metadata", "path", "keyword"),
    [
        ([1], "/metadata", "type"),
        (nested(MAX_DEPTH + 1), "/metadata" + "/a" * MAX_DEPTH, "maxDepth"),
        (nested(200), "/metadata" + "/a" * MAX_DEPTH, "maxDepth"),
        ({"ok": {"a\x00b": 1}}, "/metadata/ok", "propertyNames"),
        ({"ok": {"\x1b[2J": 1}}, "/metadata/ok", "propertyNames"),
        ({"k" * 201: 1}, "/metadata", "propertyNames"),
        ({"": 1}, "/metadata", "propertyNames"),
        ({"note": "nul\x00"}, "/metadata/note", "x-text"),
        ({"list": [1, float("nan")]}, "/metadata/list/1", "type"),
        ({"n": float("inf")}, "/metadata/n", "type"),
        ({"big": "a" * MAX_BYTES}, "/metadata", "maxBytes"),
    ],
)
def test_a_refusal_names_the_field(metadata: Any, path: str, keyword: str) -> None:
    [detail] = refusal(metadata)
    assert (detail["path"], detail["keyword"]) == (path, keyword)
    assert len(detail["message"]) < 100, "the refused key or value is not repeated"


def test_a_value_of_no_json_type_is_refused() -> None:
    assert refusal({"set": {1, 2}})[0]["path"] == "/metadata/set"
