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
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import (
    X25519PrivateKey,
    X25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.hmac import HMAC
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .age_keys import AgeError, generate_identity, identity_to_recipient, parse_identities, parse_recipient

__all__ = [
    "CHUNK_SIZE",
    "MAX_HEADER_SIZE",
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
NONCE_SIZE = 16
MAX_HEADER_SIZE = 64 * 1024
"""Limit on the textual header (version line to MAC line), nonce excluded."""

_VERSION_LINE = b"age-encryption.org/v1\n"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_ZERO_NONCE = bytes(12)
_CHUNK_NONCE = struct.Struct(">3xQ?")
_B64_LINE = re.compile(rb"[A-Za-z0-9+/]{0,64}")
_ARGUMENT = re.compile(rb"[\x21-\x7e]+")

# --- primitives -------------------------------------------------------------


def _hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(SHA256(), 32, salt, info).derive(ikm)


def _hmac(key: bytes) -> HMAC:
    return HMAC(key, SHA256())


def _b64encode(data: bytes) -> bytes:
    return base64.b64encode(data).rstrip(b"=")


def _b64decode(text: bytes) -> bytes:
    try:
        data = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except binascii.Error:
        raise AgeError("malformed age header: invalid base64") from None
    if _b64encode(data) != text:
        raise AgeError("malformed age header: non-canonical base64")
    return data


# --- encryption -------------------------------------------------------------


def _x25519_stanza(file_key: bytes, recipient: X25519PublicKey) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:
        raise ValueError("invalid age recipient: low-order X25519 point") from None
    wrap_key = _hkdf(shared, share + recipient.public_bytes_raw(), _X25519_INFO)
    body = ChaCha20Poly1305(wrap_key).encrypt(_ZERO_NONCE, file_key, None)
    return b"-> X25519 " + _b64encode(share) + b"\n" + _b64encode(body) + b"\n"


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
        file_key = os.urandom(16)
        header = b"".join([_VERSION_LINE, *(_x25519_stanza(file_key, r) for r in recipients), b"---"])
        mac = _hmac(_hkdf(file_key, b"", b"header"))
        mac.update(header)
        nonce = os.urandom(NONCE_SIZE)
        head = header + b" " + _b64encode(mac.finalize()) + b"\n" + nonce
        self._start(StreamState(_hkdf(file_key, nonce, b"payload"), 0, len(head), head, b""))

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


@dataclass(frozen=True)
class Header:
    """A parsed and authenticated header.

    ``size`` is the offset of the first payload chunk: the header text, its
    MAC line and the 16-byte payload nonce.  It is the ``header_size`` taken
    by :func:`encrypted_size`, :func:`plaintext_size` and :func:`chunk_span`.
    """

    size: int
    payload_key: bytes = field(repr=False)


_Stanza = tuple[list[bytes], bytes]


def _incomplete(eof: bool) -> None:
    if eof:
        raise AgeError("age file is truncated inside its header")


def _not_age(data: bytes) -> AgeError:
    if data.startswith(b"-----BEGIN"):
        return AgeError("ASCII-armored age files are not supported; store the binary form")
    if data.startswith(b"age-encryption.org/"):
        return AgeError("unsupported age format version (only age-encryption.org/v1)")
    return AgeError("not an age file: missing age-encryption.org/v1 header")


def _read_header(data: bytes, eof: bool) -> tuple[list[_Stanza], int, bytes, int] | None:
    if not _VERSION_LINE.startswith(data[: len(_VERSION_LINE)]):
        raise _not_age(data)
    stanzas: list[_Stanza] = []
    args: list[bytes] | None = None
    body: list[bytes] = []
    pos = len(_VERSION_LINE)
    while True:
        end = data.find(b"\n", pos, MAX_HEADER_SIZE)
        if end < 0:
            if len(data) >= MAX_HEADER_SIZE:
                raise AgeError(f"age header is larger than {MAX_HEADER_SIZE} bytes")
            _incomplete(eof)
            return None
        line = data[pos:end]
        if args is not None:
            if not _B64_LINE.fullmatch(line):
                raise AgeError("malformed age header: bad stanza body line")
            body.append(line)
            if len(line) < 64:
                stanzas.append((args, _b64decode(b"".join(body))))
                args, body = None, []
        elif line.startswith(b"-> "):
            args = line[3:].split(b" ")
            if not all(_ARGUMENT.fullmatch(arg) for arg in args):
                raise AgeError("malformed age header: bad stanza line")
        elif line.startswith(b"--- "):
            if not stanzas:
                raise AgeError("malformed age header: no recipient stanzas")
            mac = _b64decode(line[4:])
            if len(mac) != 32:
                raise AgeError("malformed age header: bad MAC length")
            return stanzas, pos + 3, mac, end + 1
        else:
            raise AgeError("malformed age header: unexpected line")
        pos = end + 1


def _unwrap_file_key(stanzas: list[_Stanza], identities: Sequence[X25519PrivateKey]) -> bytes:
    keys = [(identity, identity.public_key().public_bytes_raw()) for identity in identities]
    for args, body in stanzas:
        if args[0] != b"X25519":
            continue
        share = _b64decode(args[1]) if len(args) == 2 else b""
        if len(share) != 32 or len(body) != 32:
            raise AgeError("malformed age header: bad X25519 stanza")
        peer = X25519PublicKey.from_public_bytes(share)
        for identity, public in keys:
            try:
                shared = identity.exchange(peer)
            except ValueError:
                raise AgeError("malformed age header: low-order X25519 share") from None
            wrap_key = _hkdf(shared, share + public, _X25519_INFO)
            try:
                return ChaCha20Poly1305(wrap_key).decrypt(_ZERO_NONCE, body, None)
            except InvalidTag:
                continue
    if any(args[0] == b"scrypt" for args, _ in stanzas):
        raise AgeError("age file is passphrase-encrypted (scrypt); only X25519 identities are supported")
    raise AgeError("no identity matches any recipient of this age file (wrong key?)")


def parse_header(data: bytes, identities: Sequence[X25519PrivateKey], *, eof: bool = False) -> Header | None:
    """Parse and authenticate the header at the start of ``data``.

    ``data`` is a prefix of the file.  Returns None when a longer prefix is
    needed (the header plus nonce is at most ``MAX_HEADER_SIZE + 16`` bytes);
    pass ``eof=True`` when ``data`` is the whole file to get AgeError instead.
    """
    parsed = _read_header(data, eof)
    if parsed is None:
        return None
    stanzas, mac_end, mac, end = parsed
    if len(data) < end + NONCE_SIZE:
        _incomplete(eof)
        return None
    file_key = _unwrap_file_key(stanzas, identities)
    check = _hmac(_hkdf(file_key, b"", b"header"))
    check.update(data[:mac_end])
    try:
        check.verify(mac)
    except InvalidSignature:
        raise AgeError("age header MAC mismatch: the header was modified or is corrupt") from None
    nonce = data[end : end + NONCE_SIZE]
    return Header(end + NONCE_SIZE, _hkdf(file_key, nonce, b"payload"))


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
