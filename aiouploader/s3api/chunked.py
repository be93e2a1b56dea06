"""A streaming decoder for S3's ``aws-chunked`` request bodies.

Bytes go in with `ChunkedDecoder.feed` in pieces of any size (one byte at a time
works) and the object's bytes come out; the framing never does. Memory is bounded: a
chunk header or trailer line longer than `MAX_LINE` is refused, and a chunk's data is
passed on as it arrives, never held.

What is checked, per payload mode (`PayloadMode`):

- ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``: each chunk's ``chunk-signature``
  when its data is complete, chained from the request's seed signature, the final
  zero-length chunk included; with ``-TRAILER``, the ``x-amz-trailer-signature`` over
  the trailing headers.
- ``STREAMING-UNSIGNED-PAYLOAD-TRAILER``: the framing only, no signatures.
- all: that the trailers are those ``x-amz-trailer`` declared, that a trailing
  ``x-amz-checksum-*`` matches the decoded bytes (`BadDigest`), and that the decoded
  length is ``x-amz-decoded-content-length``.

Bytes of a chunk are handed on before that chunk's signature is checked, so whatever
consumes them must treat the object as unverified until `ChunkedDecoder.finish`
returns: an error from `feed` or `finish` means the object must not be stored.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from collections.abc import Mapping

from .checksums import HEADER_PREFIX, Checksum
from .errors import (
    IncompleteBody,
    InvalidArgument,
    InvalidRequest,
    MissingContentLength,
    S3Error,
    SignatureDoesNotMatch,
)
from .sigv4 import EMPTY_SHA256, PayloadMode, VerifiedRequest

MAX_LINE = 1024
"""The longest chunk header or trailer line, CRLF included."""
MAX_TRAILERS = 8
TRAILER_SIGNATURE = "x-amz-trailer-signature"

_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?")
_TRAILER_LINE = re.compile(rb"([A-Za-z0-9-]+)[ \t]*:[ \t]*([\x21-\x7e]+)[ \t]*")


class _State(enum.Enum):
    HEADER = 1
    DATA = 2
    DATA_END = 3
    TRAILERS = 4
    DONE = 5


class ChunkedDecoder:
    """Decodes one ``aws-chunked`` body; see the module docstring for what it checks."""

    def __init__(
        self,
        mode: PayloadMode,
        *,
        signing: VerifiedRequest | None = None,
        decoded_content_length: int | None = None,
        trailers: tuple[str, ...] = (),
    ) -> None:
        if not mode.streaming:
            raise ValueError(f"{mode} is not an aws-chunked payload")
        if mode.signed_chunks and signing is None:
            raise ValueError("signed chunks need the verified request's signing context")
        if trailers and not mode.trailer:
            raise InvalidArgument(f"x-amz-trailer needs a -TRAILER x-amz-content-sha256, not {mode.value}.")
        self.mode = mode
        self._signing = signing
        self._previous = signing.signature if signing is not None else ""
        self._expected_length = decoded_content_length
        self._declared = tuple(t.lower() for t in trailers)
        self._checksums = {name: Checksum.for_header(name) for name in self._declared if name.startswith(HEADER_PREFIX)}
        unknown = [name for name in self._declared if name not in self._checksums]
        if unknown:
            raise InvalidArgument(f"Unsupported trailing header {unknown[0]!r}; only x-amz-checksum-* are accepted.")
        self._state = _State.HEADER
        self._line = bytearray()
        self._remaining = 0
        self._crlf_seen = 0
        self._chunk_signature: str | None = None
        self._chunk_hash = hashlib.sha256()
        self._length = 0
        self._trailers: dict[str, str] = {}
        self._trailer_lines: list[tuple[str, str]] = []
        self._trailer_signature: str | None = None
        self._skipped_blank = False
        self._error: S3Error | None = None

    @classmethod
    def for_request(cls, verified: VerifiedRequest, headers: Mapping[str, str]) -> ChunkedDecoder:
        """A decoder for a verified streaming request, from its ``x-amz-decoded-content-length``
        and ``x-amz-trailer`` headers."""
        lowered = {name.lower(): value for name, value in headers.items()}
        length = lowered.get("x-amz-decoded-content-length")
        if length is None:
            raise MissingContentLength("An aws-chunked body needs the x-amz-decoded-content-length header.")
        if not re.fullmatch(r"\d{1,19}", length.strip()):
            raise InvalidArgument("x-amz-decoded-content-length must be a non-negative integer.")
        declared = tuple(t.strip() for t in lowered.get("x-amz-trailer", "").split(",") if t.strip())
        return cls(
            verified.payload_mode, signing=verified, decoded_content_length=int(length.strip()), trailers=declared
        )

    @property
    def done(self) -> bool:
        return self._state is _State.DONE

    @property
    def trailers(self) -> dict[str, str]:
        """The trailing headers (without the trailer signature), once decoding is done."""
        return dict(self._trailers)

    @property
    def trailing_algorithms(self) -> set[str]:
        """The algorithms of the declared trailing checksums, computed here as the bytes pass."""
        return {checksum.algorithm for checksum in self._checksums.values()}

    @property
    def checksums(self) -> dict[str, str]:
        """The base64 checksum of the decoded bytes for each declared ``x-amz-checksum-*``."""
        return {name: checksum.b64digest() for name, checksum in self._checksums.items()}

    def feed(self, data: bytes) -> bytes:
        """Take the next piece of the body; return the payload bytes it completes.

        After an error every later call raises it again."""
        if self._error is not None:
            raise self._error
        try:
            return self._feed(data)
        except S3Error as error:
            self._error = error
            raise

    def _feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        view = bytes(data)
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state is _State.DATA:
                take = min(self._remaining, end - pos)
                piece = view[pos : pos + take]
                self._payload(piece)
                out.append(piece)
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_complete()
            elif state is _State.DATA_END:
                while pos < end and self._crlf_seen < 2:
                    if view[pos] != b"\r\n"[self._crlf_seen]:
                        raise InvalidRequest("aws-chunked framing: a chunk's data is not followed by CRLF.")
                    self._crlf_seen += 1
                    pos += 1
                if self._crlf_seen == 2:
                    self._state = _State.HEADER
            elif state is _State.DONE:
                raise InvalidRequest("aws-chunked framing: data after the end of the body.")
            else:
                newline = view.find(b"\n", pos)
                stop = end if newline < 0 else newline + 1
                if len(self._line) + stop - pos > MAX_LINE:
                    raise InvalidRequest(f"aws-chunked framing: a line longer than {MAX_LINE} bytes.")
                self._line += view[pos:stop]
                pos = stop
                if newline >= 0:
                    line = bytes(self._line)
                    self._line.clear()
                    if not line.endswith(b"\r\n"):
                        raise InvalidRequest("aws-chunked framing: a line ends without CRLF.")
                    if state is _State.HEADER:
                        self._chunk_header(line[:-2])
                    else:
                        self._trailer_line(line[:-2])
        return b"".join(out)

    def finish(self) -> dict[str, str]:
        """Call at the end of the body: raises unless it was complete and correct; returns the trailers."""
        if self._error is not None:
            raise self._error
        if self._state is not _State.DONE:
            raise IncompleteBody("The request body ended before its aws-chunked encoding did.")
        return self.trailers

    def _payload(self, piece: bytes) -> None:
        if self._chunk_signature is not None:
            self._chunk_hash.update(piece)
        for checksum in self._checksums.values():
            checksum.update(piece)

    def _chunk_header(self, line: bytes) -> None:
        match = _CHUNK_HEADER.fullmatch(line)
        if match is None:
            raise InvalidRequest(f"aws-chunked framing: bad chunk header {line[:80]!r}.")
        size = int(match[1], 16)
        signature = match[2]
        if self.mode.signed_chunks and signature is None:
            raise SignatureDoesNotMatch("A chunk has no chunk-signature.")
        if not self.mode.signed_chunks and signature is not None:
            raise InvalidRequest("aws-chunked framing: a chunk-signature in an unsigned payload.")
        self._length += size
        if self._expected_length is not None and self._length > self._expected_length:
            raise IncompleteBody("The body is longer than its x-amz-decoded-content-length.")
        self._chunk_signature = signature.decode() if signature is not None else None
        self._chunk_hash = hashlib.sha256()
        self._remaining = size
        if size:
            self._state = _State.DATA
        else:
            self._chunk_complete()
            self._state = _State.TRAILERS

    def _chunk_complete(self) -> None:
        if self._chunk_signature is not None:
            self._check_signature("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{self._chunk_hash.hexdigest()}")
            self._previous = self._chunk_signature
        if self._remaining == 0 and self._state is _State.DATA:
            self._state, self._crlf_seen = _State.DATA_END, 0

    def _check_signature(self, algorithm: str, hashes: str) -> None:
        assert self._signing is not None and self._chunk_signature is not None
        signing = self._signing
        expected = signing.sign(f"{algorithm}\n{signing.timestamp}\n{signing.scope}\n{self._previous}\n{hashes}")
        if not hmac.compare_digest(expected.encode(), self._chunk_signature.encode()):
            raise SignatureDoesNotMatch(f"A {algorithm} signature does not match (at decoded byte {self._length}).")

    def _trailer_line(self, line: bytes) -> None:
        if not line:
            if self._declared and not self._trailer_lines and not self._skipped_blank:
                self._skipped_blank = True  # some signers put a blank line between the last chunk and the trailers
                return
            self._end()
            return
        if not self.mode.trailer:
            raise InvalidRequest(f"aws-chunked framing: a trailing header in a {self.mode.value} body.")
        if self._trailer_signature is not None or len(self._trailer_lines) >= MAX_TRAILERS:
            raise InvalidRequest("aws-chunked framing: unexpected trailing header after the trailer signature.")
        match = _TRAILER_LINE.fullmatch(line)
        if match is None:
            raise InvalidRequest(f"aws-chunked framing: bad trailing header {line[:80]!r}.")
        name, value = match[1].decode().lower(), match[2].decode()
        if name == TRAILER_SIGNATURE:
            if not self.mode.signed_chunks:
                raise InvalidRequest("aws-chunked framing: a trailer signature in an unsigned payload.")
            self._trailer_signature = value
            return
        if name not in self._declared or name in self._trailers:
            raise InvalidRequest(f"The trailing header {name!r} was not declared in x-amz-trailer.")
        self._trailers[name] = value
        self._trailer_lines.append((name, value))

    def _end(self) -> None:
        missing = [name for name in self._declared if name not in self._trailers]
        if missing:
            raise IncompleteBody(f"The trailing header {missing[0]!r} declared in x-amz-trailer was not sent.")
        if self.mode is PayloadMode.STREAMING_SIGNED_TRAILER:
            if self._trailer_signature is None:
                raise SignatureDoesNotMatch("The trailer has no x-amz-trailer-signature.")
            canonical = "".join(f"{name}:{value}\n" for name, value in self._trailer_lines)
            self._chunk_signature = self._trailer_signature
            self._check_signature("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(canonical.encode()).hexdigest())
        if self._expected_length is not None and self._length != self._expected_length:
            raise IncompleteBody(
                f"The body has {self._length} bytes, not the {self._expected_length} of x-amz-decoded-content-length."
            )
        for name, checksum in self._checksums.items():
            checksum.verify(self._trailers[name])
        self._state = _State.DONE
