"""How an object too large for one PUT is cut into the parts of a multipart upload.

S3's limits: every part but the last at least 5 MiB, at most 10,000 parts, objects of
at most 5 TiB. Pure arithmetic, so the gateway and tests agree on the cut.
"""

from __future__ import annotations

MIB = 1024 * 1024
#: the smallest part S3 takes (the last part may be smaller)
MIN_PART_BYTES = 5 * MIB
MAX_PARTS = 10_000
#: the largest object S3 stores
MAX_OBJECT_BYTES = 5 * 1024**4


def plan_parts(size: int, part_bytes: int) -> tuple[int, ...]:
    """The length of each part of a ``size``-byte object, in order: parts of
    ``part_bytes`` and a shorter last one. When that would take more than MAX_PARTS,
    the parts grow (to whole MiBs) until it does not."""
    if not 0 < size <= MAX_OBJECT_BYTES:
        raise ValueError(f"{size} bytes is not a size a multipart upload takes")
    if part_bytes < MIN_PART_BYTES:
        raise ValueError(f"parts of {part_bytes} bytes are below S3's minimum")
    needed = -(-size // MAX_PARTS)
    part = max(part_bytes, -(-needed // MIB) * MIB)
    full, rest = divmod(size, part)
    return (part,) * full + ((rest,) if rest else ())
