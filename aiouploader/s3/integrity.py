"""What the store should say it stored: the checksums the writer computes, and comparing them with the store's.

A part's checksum is the algorithm's digest of its bytes. A multipart object's is,
by S3's rule, the digest of the parts' digests with ``-N`` for N parts
(``COMPOSITE``), or for CRC64NVME the digest of the whole object
(``FULL_OBJECT``), had here from the parts' CRCs without reading the bytes again.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

from ..checksums import b64, combine_crc64nvme, digest
from ..errors import UpstreamError

FULL_OBJECT = frozenset({"crc64nvme"})
"""Algorithms whose multipart object checksum is of the whole object (S3 takes CRC64NVME only so)."""


def field(algorithm: str) -> str:
    """The botocore name of an algorithm's checksum: ``ChecksumCRC32C``."""
    return f"Checksum{algorithm.upper()}"


def object_checksum(algorithm: str, parts: Sequence[Mapping[str, Any]], sizes: Sequence[int]) -> str:
    """The checksum (base64) of the object made of ``parts`` (with their checksums) of ``sizes`` bytes."""
    digests = [base64.b64decode(part[field(algorithm)]) for part in parts]
    if algorithm in FULL_OBJECT:
        whole = digests[0]
        for one, size in zip(digests[1:], sizes[1:], strict=True):
            whole = combine_crc64nvme(whole, one, size)
        return b64(whole)
    return f"{b64(digest(algorithm, b''.join(digests)))}-{len(parts)}"


def same(stored: str, computed: str) -> bool:
    """Whether the store's checksum is the computed one; some stores leave out the ``-N`` of a composite."""
    return stored.partition("-")[0] == computed.partition("-")[0]


class StoredChecksumMismatch(UpstreamError):
    """The store answered with a checksum other than that of the bytes sent: they changed on the way, or in it."""

    def __init__(self, what: str, stored: str, computed: str, *, removed: bool = True) -> None:
        outcome = (
            "nothing was stored; try again."
            if removed
            else "removing it failed too, so a damaged object may be at the key: upload it again."
        )
        super().__init__(
            f"S3 stored {what} with the checksum {stored}, not the {computed} of the bytes sent; {outcome}"
        )
        self.removed = removed
