"""``comfygate workflows check``: every problem of a workflows folder, as lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comfygate.contracts.loader import load_workflows
from comfygate.contracts.object_info import validate_against_object_info
from comfygate.errors import ContractError


def check_workflows(root: Path, object_info: dict[str, Any] | None = None) -> list[str]:
    """Load ``root`` as the gateway would; with ``object_info``, also check every graph and
    contract against that server's nodes. Empty when everything is fine."""
    try:
        loaded = load_workflows(root)
    except ContractError as exc:
        return list(exc.details) if isinstance(exc.details, list) else [exc.message]
    if object_info is None:
        return []
    return [
        f"{wf.path}: {problem}"
        for wf in loaded.values()
        for problem in validate_against_object_info(wf, object_info)
    ]
