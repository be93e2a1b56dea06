"""Incremental checksums for S3's ``x-amz-checksum-*`` headers and trailers.

crc32 comes from zlib, crc32c from the ``crc32c`` package, sha1 and sha256 from hashlib.
crc64nvme needs ``awscrt`` (botocore computes it with awscrt as well); without awscrt it
is refused with `S3NotImplemented` rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import zlib
from collections.abc import Callable
from typing import Any

import crc32c

from .errors import BadDigest, InvalidRequest, S3NotImplemented

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
HEADER_PREFIX = "x-amz-checksum-"


def _awscrt_checksums() -> Any:
    try:
        return importlib.import_module("awscrt.checksums")
    except ImportError:
        return None


def crc64nvme_available() -> bool:
    return _awscrt_checksums() is not None


class Checksum:
    """One algorithm's running checksum: `update` with bytes, then `b64digest` or `verify`."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidRequest(f"Unsupported checksum algorithm {algorithm!r}; S3 knows {', '.join(ALGORITHMS)}.")
        self.algorithm = algorithm
        self._crc = 0
        self._crc_update: Callable[[bytes, int], int] | None = None
        self._hash: Any = None
        if algorithm == "crc32":
            self._crc_update, self._size = zlib.crc32, 4
        elif algorithm == "crc32c":
            self._crc_update, self._size = crc32c.crc32c, 4
        elif algorithm == "crc64nvme":
            crt = _awscrt_checksums()
            if crt is None:
                raise S3NotImplemented("CRC64NVME checksums need the awscrt package, which is not installed.")
            self._crc_update, self._size = crt.crc64nvme, 8
        else:
            self._hash = hashlib.new(algorithm)

    @classmethod
    def for_header(cls, name: str) -> Checksum:
        """The checksum that an ``x-amz-checksum-<algorithm>`` header or trailer names."""
        name = name.lower()
        if not name.startswith(HEADER_PREFIX):
            raise InvalidRequest(f"{name!r} is not an x-amz-checksum-* header.")
        return cls(name.removeprefix(HEADER_PREFIX))

    @property
    def header(self) -> str:
        return HEADER_PREFIX + self.algorithm

    def update(self, data: bytes) -> None:
        if self._crc_update is not None:
            self._crc = self._crc_update(data, self._crc)
        else:
            self._hash.update(data)

    def digest(self) -> bytes:
        if self._crc_update is not None:
            return self._crc.to_bytes(self._size, "big")
        digest: bytes = self._hash.digest()
        return digest

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode()

    def verify(self, claimed: str) -> None:
        """Compare with a base64 value a client sent, raising `BadDigest` as S3 does."""
        try:
            value = base64.b64decode(claimed.strip(), validate=True)
        except (binascii.Error, ValueError):
            value = b""
        if len(value) != len(self.digest()):
            raise InvalidRequest(f"Value for {self.header} header is invalid.")
        if value != self.digest():
            raise BadDigest(f"The {self.algorithm.upper()} you specified did not match the calculated checksum.")
