"""Cutting a large object into the parts of an S3 multipart upload."""

from __future__ import annotations

import pytest

from comfygate.storage.parts import MAX_OBJECT_BYTES, MAX_PARTS, MIB, MIN_PART_BYTES, plan_parts


def test_full_parts_and_a_shorter_last_one() -> None:
    assert plan_parts(11 * MIB + 7, 5 * MIB) == (5 * MIB, 5 * MIB, MIB + 7)


def test_a_size_of_whole_parts_has_no_empty_last_part() -> None:
    assert plan_parts(128 * MIB, 64 * MIB) == (64 * MIB, 64 * MIB)
    assert plan_parts(1, 64 * MIB) == (1,)


def test_parts_grow_to_whole_mibs_to_stay_within_the_part_limit() -> None:
    sizes = plan_parts(MAX_OBJECT_BYTES, 64 * MIB)
    assert len(sizes) <= MAX_PARTS and sum(sizes) == MAX_OBJECT_BYTES
    assert sizes[0] % MIB == 0 and sizes[0] > 64 * MIB
    assert set(sizes[:-1]) == {sizes[0]} and 0 < sizes[-1] <= sizes[0]
    # Exactly at the limit, the asked size still serves.
    assert len(plan_parts(MAX_PARTS * MIN_PART_BYTES, MIN_PART_BYTES)) == MAX_PARTS


@pytest.mark.parametrize(
    ("size", "part"),
    [(0, MIN_PART_BYTES), (MAX_OBJECT_BYTES + 1, MIN_PART_BYTES), (10 * MIB, MIN_PART_BYTES - 1)],
)
def test_sizes_s3_cannot_take_are_refused(size: int, part: int) -> None:
    with pytest.raises(ValueError):
        plan_parts(size, part)
