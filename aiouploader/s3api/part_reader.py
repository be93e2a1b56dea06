"""A client part's bytes as they are read, with every digest the part is checked and known by."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Mapping

from ..checksums import Hash, b64
from .checksums import HEADER_PREFIX, Checksum
from .errors import BadDigest, S3Error
from .multipart import Part
from .payload import Payload
from .responses import Refused

_STRONGEST_FIRST = ("sha256", "sha1", "crc64nvme", "crc32c", "crc32")


class PartReader:
    """A part's decoded bytes, with the digests it is checked and known by and the upload's full-object checksum
    running, each computed once.

    The MD5 runs only where it is needed: for a Content-MD5, and as the ETag of a part without a checksum
    (clients that send none, such as s3cmd, compare a part's ETag with the MD5 of what they sent; those that
    send one do not). A part with a checksum is known by the strongest digest verified anyway: the signed
    SHA-256 of its payload, else its strongest ``x-amz-checksum-*``. A trailing checksum is the payload's to
    compute and verify, not computed here again.
    """

    def __init__(
        self, payload: Payload, algorithms: set[str], whole: Checksum | None, headers: Mapping[str, str]
    ) -> None:
        self.payload = payload
        trailing = payload.trailing_algorithms
        self.md5: Hash | None = None
        if "Content-MD5" in headers or not algorithms | trailing:
            self.md5 = hashlib.md5(usedforsecurity=False)
        self.sums = [Checksum(algorithm) for algorithm in sorted(algorithms - trailing)]
        running: list[Checksum | Hash | None] = [*self.sums, whole, self.md5]
        self._updates = [digest.update for digest in running if digest is not None]
        self.size = 0

    async def read(self) -> bytes:
        data = await self.payload.read()
        self.size += len(data)
        for update in self._updates:
            update(data)
        return data

    def part(self, number: int, headers: Mapping[str, str]) -> Part:
        """The part, once its body and every digest the client sent for it check out; `Refused` otherwise."""
        trailing = self.payload.verify()
        try:
            for checksum in self.sums:
                if checksum.header in headers:
                    checksum.verify(headers[checksum.header])
            md5 = self.md5.digest() if self.md5 is not None else b""
            if "Content-MD5" in headers and headers["Content-MD5"].strip() != b64(md5):
                raise BadDigest("The Content-MD5 you specified did not match what we received.")
        except S3Error as error:
            raise Refused(error) from None
        checksums = {checksum.header: checksum.b64digest() for checksum in self.sums} | trailing
        return Part(number, self.size, *self._known_by(checksums), checksums, dt.datetime.now(dt.UTC))

    def _known_by(self, checksums: Mapping[str, str]) -> tuple[str, bytes]:
        """The algorithm and digest of the part's ETag."""
        if self.md5 is not None:
            return "md5", self.md5.digest()
        if (sha256 := self.payload.signed_sha256()) is not None:
            return "sha256", sha256
        algorithm = next(name for name in _STRONGEST_FIRST if HEADER_PREFIX + name in checksums)
        return algorithm, base64.b64decode(checksums[HEADER_PREFIX + algorithm])
