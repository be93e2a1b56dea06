"""Incremental checksums for S3's ``x-amz-checksum-*`` headers and trailers, from :mod:`aiouploader.checksums`.

crc64nvme needs ``awscrt`` (botocore computes it with awscrt as well); without awscrt it
is refused with `S3NotImplemented` rather than guessed at.
"""

from __future__ import annotations

import base64
import binascii

from ..checksums import HASHES, b64
from .errors import BadDigest, InvalidRequest, S3NotImplemented

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
HEADER_PREFIX = "x-amz-checksum-"


def crc64nvme_available() -> bool:
    return "crc64nvme" in HASHES


class Checksum:
    """One algorithm's running checksum: `update` with bytes, then `b64digest` or `verify`."""

    def __init__(self, algorithm: str) -> None:
        if algorithm not in ALGORITHMS:
            raise InvalidRequest(f"Unsupported checksum algorithm {algorithm!r}; S3 knows {', '.join(ALGORITHMS)}.")
        if algorithm not in HASHES:
            raise S3NotImplemented("CRC64NVME checksums need the awscrt package, which is not installed.")
        self.algorithm = algorithm
        self._hash = HASHES[algorithm]()

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
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def b64digest(self) -> str:
        return b64(self.digest())

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
