"""The age v1 file format (https://age-encryption.org/v1), X25519 recipients only.

Encryption is push-style streaming (:class:`Encryptor`).  Decryption is
random-access so that a byte range of a stored object can be served by
fetching only the ciphertext chunks it needs::

    header = parse_header(prefix, identities)          # None: fetch more
    lo, hi, first = chunk_span(start, end, header.size, stored_size)
    dec = ChunkDecryptor(header, stored_size)
    # fetch stored bytes [lo, hi), split into STORED_CHUNK_SIZE pieces,
    # decrypt piece i as chunk first + i, then drop start - first * CHUNK_SIZE
    # leading bytes and keep end - start bytes.

The header, written and parsed, is :mod:`~aiouploader.age_header`'s.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from .age_header import MAX_HEADER_SIZE, NONCE_SIZE, Header, parse_header, write_header
from .age_keys import AgeError, generate_identity, identity_to_recipient, parse_identities, parse_recipient

__all__ = [
    "CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "NONCE_SIZE",
    "STORED_CHUNK_SIZE",
    "AgeError",
    "ChunkDecryptor",
    "Encryptor",
    "Header",
    "StreamState",
    "chunk_span",
    "encrypted_size",
    "generate_identity",
    "identity_to_recipient",
    "parse_header",
    "parse_identities",
    "parse_recipient",
    "plaintext_size",
]

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
STORED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
_CHUNK_NONCE = struct.Struct(">3xQ?")

# --- encryption -------------------------------------------------------------


@dataclass(frozen=True)
class StreamState:
    """Where an age stream is, to go on with it in another process: ``counter`` chunks sealed, the ``head``er
    until the first update sends it, and the plaintext held back (``pending``, at most one chunk)."""

    payload_key: bytes = field(repr=False)
    counter: int
    header_size: int
    head: bytes
    pending: bytes = field(repr=False)


class Encryptor:
    """Push-style streaming encryptor.

    ``header_size`` is the number of bytes before the first payload chunk
    (header text plus nonce), known up front so that
    ``encrypted_size(n, enc.header_size)`` gives the final object size.
    """

    def __init__(self, recipients: Sequence[X25519PublicKey]) -> None:
        if not recipients:
            raise ValueError("at least one recipient is required")
        head, payload_key = write_header(recipients)
        self._start(StreamState(payload_key, 0, len(head), head, b""))

    def _start(self, state: StreamState) -> None:
        self._head = state.head
        self.header_size = state.header_size
        self._payload_key = state.payload_key
        self._aead = ChaCha20Poly1305(state.payload_key)
        self._counter = state.counter
        self._pending = bytearray(state.pending)
        self._finalized = False

    def save(self) -> StreamState:
        """The stream's state between two :meth:`update` calls; it holds the payload key: never store it readable."""
        if self._finalized:
            raise RuntimeError("Encryptor.save() called after finalize()")
        return StreamState(self._payload_key, self._counter, self.header_size, self._head, bytes(self._pending))

    @classmethod
    def resume(cls, state: StreamState) -> Encryptor:
        """An encryptor that goes on with the stream whose :meth:`save` gave ``state``."""
        if len(state.payload_key) != 32 or len(state.pending) > CHUNK_SIZE or state.counter < 0:
            raise ValueError("not the state of an age stream")
        encryptor = cls.__new__(cls)
        encryptor._start(state)
        return encryptor

    def _seal(self, chunk: bytes | bytearray | memoryview, final: bool) -> bytes:
        nonce = _CHUNK_NONCE.pack(self._counter, final)
        self._counter += 1
        return self._aead.encrypt(nonce, chunk, None)

    def _take_head(self, out: list[bytes]) -> None:
        if self._head:
            out.append(self._head)
            self._head = b""

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Encrypt ``data``; return the ciphertext ready so far.

        The header comes out with the first call.  Up to one chunk of
        plaintext is held back because the last chunk carries the final flag.
        """
        if self._finalized:
            raise RuntimeError("Encryptor.update() called after finalize()")
        out: list[bytes] = []
        self._take_head(out)
        view = memoryview(data).cast("B")
        pending = self._pending
        if pending:
            room = CHUNK_SIZE - len(pending)
            if len(view) <= room:
                pending += view
                return b"".join(out)
            pending += view[:room]
            view = view[room:]
            out.append(self._seal(pending, False))
            pending.clear()
        if view:
            full = (len(view) - 1) // CHUNK_SIZE
            for offset in range(0, full * CHUNK_SIZE, CHUNK_SIZE):
                out.append(self._seal(view[offset : offset + CHUNK_SIZE], False))
            pending += view[full * CHUNK_SIZE :]
        return b"".join(out)

    def finalize(self) -> bytes:
        """Return the remaining ciphertext, ending with the final chunk."""
        if self._finalized:
            raise RuntimeError("Encryptor.finalize() called twice")
        self._finalized = True
        out: list[bytes] = []
        self._take_head(out)
        out.append(self._seal(self._pending, True))
        return b"".join(out)


# --- sizes ------------------------------------------------------------------


def _chunk_count(size: int) -> int:
    return max(1, -(-size // CHUNK_SIZE))


def encrypted_size(plaintext_size: int, header_size: int) -> int:
    """Stored size of ``plaintext_size`` bytes behind a header of ``header_size``."""
    if plaintext_size < 0 or header_size < 0:
        raise ValueError("sizes must not be negative")
    return header_size + plaintext_size + TAG_SIZE * _chunk_count(plaintext_size)


def plaintext_size(stored_size: int, header_size: int) -> int:
    """Inverse of :func:`encrypted_size`; AgeError if no plaintext has that size."""
    payload = stored_size - header_size
    full, rest = divmod(payload, STORED_CHUNK_SIZE)
    if payload < TAG_SIZE or 0 < rest < TAG_SIZE or (rest == TAG_SIZE and full):
        raise AgeError(
            f"age file of {stored_size} bytes does not fit the chunk layout "
            f"after a {header_size}-byte header: truncated or corrupt"
        )
    return full * CHUNK_SIZE + max(rest - TAG_SIZE, 0)


# --- decryption -------------------------------------------------------------


def chunk_span(start: int, end: int, header_size: int, stored_size: int) -> tuple[int, int, int]:
    """Locate the ciphertext for the plaintext range ``[start, end)``.

    Returns ``(stored_start, stored_end, first_chunk_index)``: the stored bytes
    ``[stored_start, stored_end)`` (end exclusive) hold whole chunks from
    ``first_chunk_index`` on.  An empty range yields the one chunk holding
    ``start`` (the last chunk if ``start`` is the plaintext size), so even an
    empty file has a final chunk to authenticate.
    """
    size = plaintext_size(stored_size, header_size)
    if not 0 <= start <= end <= size:
        raise ValueError(f"range [{start}, {end}) is outside the {size}-byte plaintext")
    first = min(start // CHUNK_SIZE, _chunk_count(size) - 1)
    last = (end - 1) // CHUNK_SIZE if end > start else first
    stored_start = header_size + first * STORED_CHUNK_SIZE
    stored_end = min(header_size + (last + 1) * STORED_CHUNK_SIZE, stored_size)
    return stored_start, stored_end, first


class ChunkDecryptor:
    """Decrypts individual payload chunks of a stored object of known size."""

    def __init__(self, header: Header, stored_size: int) -> None:
        self.plaintext_size = plaintext_size(stored_size, header.size)
        self._aead = ChaCha20Poly1305(header.payload_key)
        self._last = _chunk_count(self.plaintext_size) - 1
        self._last_size = stored_size - header.size - self._last * STORED_CHUNK_SIZE

    def decrypt(self, index: int, chunk: bytes | bytearray | memoryview) -> bytes:
        """Decrypt whole ciphertext chunk ``index``; AgeError if it does not authenticate."""
        if not 0 <= index <= self._last:
            raise ValueError(f"chunk index {index} is outside 0..{self._last}")
        final = index == self._last
        expected = self._last_size if final else STORED_CHUNK_SIZE
        if len(chunk) != expected:
            raise AgeError(f"age chunk {index} is {len(chunk)} bytes, expected {expected}: short read?")
        try:
            return self._aead.decrypt(_CHUNK_NONCE.pack(index, final), chunk, None)
        except InvalidTag:
            what = "final chunk" if final else "chunk"
            raise AgeError(
                f"age {what} {index} failed authentication: the file is corrupt, tampered with, or truncated"
            ) from None
