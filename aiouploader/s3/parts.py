"""S3's part limits, the part-size schedule, and what one upload holds in memory because of it."""

from __future__ import annotations

import math

MIN_PART_SIZE = 5 * 1024**2
MAX_PART_SIZE = 5 * 1024**3
MAX_PARTS = 10_000
PARTS_PER_SIZE_STEP = 900


def part_size_for(number: int, base: int, content_length: int | None) -> int:
    """The size of part ``number`` (1-based), so that any object fits in 10,000 parts.

    A known length picks one size up front. An unknown one starts at ``base``
    and doubles every 900 parts, up to S3's 5GiB: even 5MiB parts reach S3's
    5TiB object limit by part 10,000.
    """
    if content_length is not None:
        needed = math.ceil(content_length / MAX_PARTS)
        return min(MAX_PART_SIZE, max(base, math.ceil(needed / 2**20) * 2**20))
    return min(MAX_PART_SIZE, base << ((number - 1) // PARTS_PER_SIZE_STEP))


def upload_memory(part_size: int, parts_in_flight: int, block_size: int, content_length: int | None = None) -> int:
    """The most one upload of ``content_length`` bytes (``None``: unknown) holds in memory.

    The block being read, and the writer's parts: ``parts_in_flight`` on their
    way to S3 and one filling. A length over ``part_size`` x 10,000 needs
    larger parts, and as many more bytes; a short one needs no more than itself.
    """
    if content_length is None:
        return part_size * (parts_in_flight + 1) + block_size
    part = part_size_for(1, part_size, content_length)
    return min(part * (parts_in_flight + 1) + block_size, content_length + block_size)
