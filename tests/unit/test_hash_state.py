"""Hashes whose running state is saved and taken up by a new object give hashlib's digests."""

from __future__ import annotations

import ctypes
import hashlib
import random
import zlib

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiouploader.checksums import HASHES, SavableHash
from aiouploader.hash_state import saved_hash

ALGORITHMS = ["md5", "sha1", "sha256", "sha512"]


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(data)) for cut in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def _fresh(algorithm: str) -> SavableHash:
    hasher = saved_hash(algorithm) or HASHES[algorithm]()
    assert isinstance(hasher, SavableHash), f"{algorithm} cannot save its state here"
    return hasher


def test_libcrypto_is_found_for_every_algorithm_hashlib_gets_from_it() -> None:
    for algorithm in ALGORITHMS:
        assert saved_hash(algorithm) is not None, algorithm


@settings(max_examples=60, deadline=None, database=None)
@given(
    algorithm=st.sampled_from([*ALGORITHMS, "crc32", "crc32c"]),
    data=st.binary(max_size=1200) | st.integers(0, 300_000).map(lambda n: random.Random(n).randbytes(n)),
    cuts=st.lists(st.integers(0, 300_000), max_size=6),
)
def test_a_hash_saved_between_any_two_updates_and_taken_up_by_a_new_object_gives_the_same_digest(
    algorithm: str, data: bytes, cuts: list[int]
) -> None:
    expected = {
        "crc32": lambda d: zlib.crc32(d).to_bytes(4, "big"),
        "crc32c": lambda d: crc32c.crc32c(d).to_bytes(4, "big"),
    }.get(algorithm, lambda d: hashlib.new(algorithm, d).digest())(data)
    hasher = _fresh(algorithm)
    for piece in _cut(data, cuts):
        hasher.update(piece)
        state = hasher.save()
        hasher.digest()  # a digest on the way leaves the hash going
        hasher = _fresh(algorithm)
        hasher.restore(state)
    assert hasher.digest() == expected


def test_digest_does_not_end_the_hash() -> None:
    hasher = _fresh("sha256")
    hasher.update(b"abc")
    assert hasher.digest() == hashlib.sha256(b"abc").digest()
    hasher.update(b"def")
    assert hasher.digest() == hashlib.sha256(b"abcdef").digest()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_state_of_another_size_or_byte_order_is_refused(algorithm: str) -> None:
    state = _fresh(algorithm).save()
    for wrong in (state[:-1], state + b"\0", (b"b" if state[:1] == b"l" else b"l") + state[1:]):
        with pytest.raises(ValueError, match="not a saved"):
            _fresh(algorithm).restore(wrong)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_state_whose_buffered_count_is_out_of_bounds_is_refused(algorithm: str) -> None:
    hasher = _fresh(algorithm)
    hasher.update(b"x" * 10)
    state = bytearray(hasher.save())
    # ``num``, the bytes buffered, is the first unsigned int after the block buffer.
    context = type(saved_hash(algorithm)._ctx)  # type: ignore[union-attr]
    offset = 1 + context.num.offset
    state[offset : offset + 4] = (10_000).to_bytes(4, "little" if state[:1] == b"l" else "big")
    with pytest.raises(ValueError, match="out of bounds"):
        _fresh(algorithm).restore(bytes(state))
    assert ctypes.sizeof(context) == len(state) - 1


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c"])
def test_a_crc_state_of_another_size_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match="CRC"):
        _fresh(algorithm).restore(b"\0\0\0")
