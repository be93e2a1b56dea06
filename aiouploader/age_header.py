"""The age v1 header (https://age-encryption.org/v1): X25519 recipient stanzas, the header's MAC, the
payload nonce; written for new files, parsed and authenticated to decrypt them."""

from __future__ import annotations

import base64
import binascii
import os
import re
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

from .age_keys import AgeError

NONCE_SIZE = 16
MAX_HEADER_SIZE = 64 * 1024
"""Limit on the textual header (version line to MAC line), nonce excluded."""

_VERSION_LINE = b"age-encryption.org/v1\n"
_X25519_INFO = b"age-encryption.org/v1/X25519"
_ZERO_NONCE = bytes(12)
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


# --- writing ----------------------------------------------------------------


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


def write_header(recipients: Sequence[X25519PublicKey]) -> tuple[bytes, bytes]:
    """A new file's header, a stanza per recipient, with its MAC and payload nonce; and the file's payload key."""
    file_key = os.urandom(16)
    header = b"".join([_VERSION_LINE, *(_x25519_stanza(file_key, r) for r in recipients), b"---"])
    mac = _hmac(_hkdf(file_key, b"", b"header"))
    mac.update(header)
    nonce = os.urandom(NONCE_SIZE)
    return header + b" " + _b64encode(mac.finalize()) + b"\n" + nonce, _hkdf(file_key, nonce, b"payload")


# --- parsing ----------------------------------------------------------------


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
