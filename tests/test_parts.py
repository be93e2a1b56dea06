"""The part-size schedule: any object up to S3's maximum fits in 10,000 parts."""

from __future__ import annotations

import pytest

from aiouploader.s3 import MAX_PART_SIZE, MAX_PARTS, part_size_for

MiB = 1024**2
TiB = 1024**4


def test_unknown_length_starts_at_the_configured_size_and_doubles_every_900_parts() -> None:
    sizes = [part_size_for(n, 8 * MiB, None) for n in (1, 900, 901, 1800, 1801, 10_000)]
    assert sizes == [8 * MiB, 8 * MiB, 16 * MiB, 16 * MiB, 32 * MiB, MAX_PART_SIZE]


@pytest.mark.parametrize("base", [5 * MiB, 8 * MiB, 64 * MiB])
def test_unknown_length_reaches_five_tib_within_ten_thousand_parts(base: int) -> None:
    total = sum(part_size_for(n, base, None) for n in range(1, MAX_PARTS + 1))
    assert total >= 5 * TiB
    assert all(part_size_for(n, base, None) <= MAX_PART_SIZE for n in range(1, MAX_PARTS + 1))


@pytest.mark.parametrize("length", [0, 1, 80 * 1024**3, 5 * TiB, 5 * TiB - 1, 123_456_789_012])
def test_known_length_picks_one_size_that_fits(length: int) -> None:
    size = part_size_for(1, 8 * MiB, length)
    assert size >= 8 * MiB and size % MiB == 0 and size <= MAX_PART_SIZE
    assert size * MAX_PARTS >= length
    assert all(part_size_for(n, 8 * MiB, length) == size for n in (2, 5000, MAX_PARTS))
