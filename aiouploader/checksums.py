"""Digests by name (MD5, SHA-1, SHA-256, SHA-512, CRC32, CRC32C, and CRC64NVME where ``awscrt`` is installed),
whole or incremental, and their base64."""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import importlib.util
import zlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import crc32c

Data = bytes | bytearray | memoryview


class Hash(Protocol):
    def update(self, data: Data, /) -> None: ...
    def digest(self) -> bytes: ...


@runtime_checkable
class SavableHash(Hash, Protocol):
    """A hash whose running state is bytes, to go on with in another process (:mod:`aiouploader.hash_state`)."""

    def save(self) -> bytes: ...
    def restore(self, state: bytes, /) -> None: ...


class _Crc:
    """A CRC as a hash object: its digest is the big-endian bytes S3 and RFC 9530 exchange."""

    def __init__(self, func: Callable[[Data, int], int], size: int = 4) -> None:
        self._func = func
        self._size = size
        self._value = 0

    def update(self, data: Data, /) -> None:
        self._value = self._func(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._size, "big")

    def save(self) -> bytes:
        """The running state: the CRC so far (its digest)."""
        return self.digest()

    def restore(self, state: bytes) -> None:
        if len(state) != self._size:
            raise ValueError(f"a saved CRC of {len(state)} bytes, not {self._size}")
        self._value = int.from_bytes(state, "big")


HASHES: dict[str, Callable[[], Hash]] = {
    "md5": hashlib.md5,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
    "crc32": lambda: _Crc(zlib.crc32),
    "crc32c": lambda: _Crc(crc32c.crc32c),
}
"""A new incremental hash, by algorithm name."""


def _crc64nvme() -> Hash:
    crt: Any = importlib.import_module("awscrt.checksums")
    return _Crc(crt.crc64nvme, 8)


if importlib.util.find_spec("awscrt") is not None:  # imported at the first CRC64NVME: it weighs about 6 MiB
    HASHES["crc64nvme"] = _crc64nvme


def digest(algorithm: str, *data: Data) -> bytes:
    """The ``algorithm`` digest of ``data``, its pieces end to end; CPU-bound (see
    :func:`aiouploader.offload.off_loop`)."""
    hasher = HASHES[algorithm]()
    for piece in data:
        hasher.update(piece)
    return hasher.digest()


def b64(digest: bytes) -> str:
    """A digest as HTTP headers carry it: Content-MD5, x-amz-checksum-*, Content-Digest."""
    return base64.b64encode(digest).decode()


_CRC64NVME_POLY = 0x9A6C9329AC4BC9B5  # reflected
_TOP = 1 << 63


def _multiply(a: int, b: int) -> int:
    """``a x b`` modulo the CRC-64/NVME polynomial, in the reflected bit order of the CRC."""
    m, product = _TOP, 0
    while True:
        if a & m:
            product ^= b
            if not a & (m - 1):
                return product
        m >>= 1
        b = (b >> 1) ^ _CRC64NVME_POLY if b & 1 else b >> 1


_X_POWERS = [_TOP >> 1]  # x^(2^k) for k = 0..63
for _ in range(63):
    _X_POWERS.append(_multiply(_X_POWERS[-1], _X_POWERS[-1]))


@functools.lru_cache(maxsize=64)
def _shift(length: int) -> int:
    """x^(8 x ``length``): what appending ``length`` bytes does to a CRC; parts mostly share one length."""
    shift, k = _TOP, 3  # k starts at 2^3: bytes to bits
    while length:
        if length & 1:
            shift = _multiply(_X_POWERS[k % 64], shift)
        length >>= 1
        k += 1
    return shift


def combine_crc64nvme(first: bytes, second: bytes, second_length: int) -> bytes:
    """The CRC64NVME of two blocks end to end, from theirs and the second's length (as zlib's crc32_combine).

    How a multipart upload's full-object checksum is had from its parts' checksums, without reading the bytes
    again.
    """
    value = _multiply(_shift(second_length), int.from_bytes(first, "big")) ^ int.from_bytes(second, "big")
    return value.to_bytes(8, "big")
