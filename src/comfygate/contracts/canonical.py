"""Canonical JSON and the workflow version derived from it."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8 without escapes: equal values give equal bytes."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def workflow_version(graph: dict[str, Any], contract: dict[str, Any]) -> str:
    """SHA-256 hex of the canonical ``{"graph": ..., "contract": ...}``.

    Computed from the parsed JSON, so re-indenting or reordering keys in the files keeps
    the version, while any change of value makes a new one.
    """
    return hashlib.sha256(canonical_json({"graph": graph, "contract": contract})).hexdigest()
