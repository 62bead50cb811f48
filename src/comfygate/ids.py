"""Public identifiers: UUIDv7, time-ordered and unguessable (74 random bits)."""

from __future__ import annotations

import uuid

import uuid6

#: the canonical form every id of this API has (lowercase, hyphenated)
UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def new_id() -> str:
    return str(uuid6.uuid7())


def new_prompt_id() -> str:
    # Newer ComfyUI rejects anything but a canonical lowercase hyphenated UUID.
    return str(uuid.uuid4())


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False
