"""A request body to S3 sent from its pieces: slices in order, the same on every pass, never joined to be sent."""

from __future__ import annotations

import os

from aiouploader.checksums import Data
from aiouploader.s3.sending import Body

KiB = 1024


async def slices(body: Body) -> list[memoryview]:
    return [piece async for piece in body]


async def test_a_body_is_sent_as_slices_of_its_pieces_in_order() -> None:
    pieces: list[Data] = [os.urandom(600 * KiB), memoryview(os.urandom(900 * KiB))[: 300 * KiB], os.urandom(5)]
    body = Body(pieces)
    sent = await slices(body)
    assert b"".join(sent) == b"".join(pieces)
    assert [len(piece) for piece in sent] == [256 * KiB, 256 * KiB, 88 * KiB, 256 * KiB, 44 * KiB, 5]
    assert len(body) == 900 * KiB + 5
    assert not body.sending


async def test_pieces_smaller_than_a_slice_are_sent_joined_up_to_one() -> None:
    pieces: list[Data] = [os.urandom(4 * KiB) for _ in range(100)]
    pieces += [b"", os.urandom(512 * KiB), os.urandom(KiB)]
    sent = await slices(Body(pieces))
    assert b"".join(sent) == b"".join(pieces)
    assert [len(piece) for piece in sent] == [256 * KiB, 144 * KiB, 256 * KiB, 256 * KiB, KiB]


async def test_a_retry_sends_the_same_bytes_again_and_read_joins_them() -> None:
    pieces: list[Data] = [os.urandom(300 * KiB), os.urandom(10 * KiB)]
    body = Body(pieces)
    first, again = b"".join(await slices(body)), b"".join(await slices(body))
    assert first == again == body.read() == b"".join(pieces)
