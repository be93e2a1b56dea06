"""A PutObject body as the object's bytes, whatever the payload mode, and the check that comes before storing it.

`Payload.read` gives the upload session the decoded bytes (the ``aws-chunked`` framing never reaches a
plugin or S3); `Payload.verify` is the whole body's check (the signed SHA-256, the last chunk and trailer
signatures, the trailing checksums), made before the session may commit.
"""

from __future__ import annotations

from aiohttp import web

from .chunked import ChunkedDecoder
from .errors import S3Error
from .responses import Refused
from .sigv4 import PayloadMode, PayloadSha256, VerifiedRequest


class Payload:
    def __init__(self, request: web.Request, verified: VerifiedRequest) -> None:
        self._content = request.content
        mode = verified.payload_mode
        self._decoder = ChunkedDecoder.for_request(verified, request.headers) if mode.streaming else None
        self._sha256 = None
        if mode is PayloadMode.SHA256 and verified.payload_sha256 is not None:
            self._sha256 = PayloadSha256(verified.payload_sha256)
        self.content_length = request.content_length
        """The object's size as the request declares it (``x-amz-decoded-content-length`` when streaming)."""
        if self._decoder is not None:
            self.content_length = int(request.headers["x-amz-decoded-content-length"].strip())

    @property
    def trailing_algorithms(self) -> set[str]:
        """The algorithms of the trailing checksums, which `verify` checks and answers."""
        return self._decoder.trailing_algorithms if self._decoder is not None else set()

    def signed_sha256(self) -> bytes | None:
        """The SHA-256 of the body read so far when the signature covers it (verified by `verify` at the end)."""
        return self._sha256.digest() if self._sha256 is not None else None

    async def read(self) -> bytes:
        """The next bytes of the object, ``b""`` at its end; a broken body raises `Refused`."""
        while True:
            piece = await self._content.readany()
            try:
                if self._decoder is None:
                    if self._sha256 is not None:
                        self._sha256.update(piece)
                    return piece
                if not piece:
                    return b""
                decoded = self._decoder.feed(piece)
            except S3Error as error:
                raise Refused(error) from None
            if decoded:
                return decoded

    def verify(self) -> dict[str, str]:
        """Raise `Refused` unless the whole body was what the signature and trailers say; the trailing checksums
        (``x-amz-checksum-*`` header name: base64 value) otherwise."""
        try:
            if self._decoder is not None:
                self._decoder.finish()
                return self._decoder.checksums
            if self._sha256 is not None:
                self._sha256.verify()
        except S3Error as error:
            raise Refused(error) from None
        return {}
