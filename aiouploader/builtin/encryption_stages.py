"""The ``encryption`` plugin's stages: age v1 on the way in, and on the way out for GET and Range."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from .. import age
from ..errors import UpstreamError
from ..hookspecs import Download, DownloadStage, Fetch, Upload, UploadStage
from ..offload import off_loop

MAGIC = b"age-encryption.org/v1\n"
CIPHERTEXT_TYPE = "application/octet-stream"
"""What an age object is served as where the route cannot decrypt it."""
_STATE = struct.Struct(">BQII32s")
"""A saved stream: version 1, chunks sealed, header size, length of the header not yet sent, payload key; then
that header and the plaintext held back."""


@dataclass(frozen=True)
class Keys:
    recipients: Sequence[X25519PublicKey]
    identities: Sequence[X25519PrivateKey]


def _undecryptable(exc: Exception) -> UpstreamError:
    return UpstreamError(f"The stored object cannot be decrypted ({exc}); it may be damaged or for another key.")


class EncryptStage(UploadStage):
    def __init__(self, upload: Upload, keys: Keys) -> None:
        self._upload = upload
        self._encryptor = age.Encryptor(keys.recipients)
        self._recipients = len(keys.recipients)

    async def feed(self, block: bytes) -> bytes:
        return await off_loop(self._encryptor.update, block)

    async def finish(self) -> bytes:
        self._upload.reports["encryption"] = {"format": "age-v1", "recipients": self._recipients}
        return self._encryptor.finalize()

    def save(self) -> bytes:
        """The age stream where it is: its payload key (the chain seals it), chunk counter, and held-back bytes."""
        s = self._encryptor.save()
        return _STATE.pack(1, s.counter, s.header_size, len(s.head), s.payload_key) + s.head + s.pending

    def restore(self, state: bytes) -> None:
        if state[:1] != b"\x01" or len(state) < _STATE.size:
            raise ValueError("not a saved age stream of version 1")
        _, counter, header_size, head, key = _STATE.unpack_from(state)
        rest = state[_STATE.size :]
        stream = age.StreamState(key, counter, header_size, rest[:head], rest[head:])
        self._encryptor = age.Encryptor.resume(stream)


class DecryptStage(DownloadStage):
    """Decrypts age objects; without identities, serves them as the opaque data they are."""

    def __init__(self, download: Download, identities: Sequence[X25519PrivateKey]) -> None:
        super().__init__()
        self._download = download
        self._identities = identities
        self._decryptor: age.ChunkDecryptor | None = None
        self._header_size = 0
        self._stored_size = 0

    async def open(self, fetch: Fetch, size: int) -> int:
        await super().open(fetch, size)
        prefix = await self._collect(0, min(size, 4096))
        if not prefix.startswith(MAGIC[: len(prefix)]) or len(prefix) < len(MAGIC):
            return size
        if not self._identities:
            self._download.headers.pop("Content-Encoding", None)
            self._download.headers.pop("Repr-Digest", None)  # it describes the plaintext
            self._download.headers["Content-Type"] = CIPHERTEXT_TYPE
            return size
        try:
            header = age.parse_header(prefix, self._identities, eof=len(prefix) == size)
            if header is None:
                limit = min(size, age.MAX_HEADER_SIZE + age.NONCE_SIZE)
                prefix = await self._collect(0, limit)
                header = age.parse_header(prefix, self._identities, eof=True)
            assert header is not None
            self._decryptor = age.ChunkDecryptor(header, size)
        except age.AgeError as exc:
            raise _undecryptable(exc) from exc
        self._header_size, self._stored_size = header.size, size
        # A truncated object fails here, before the answer starts, rather than part-way through it.
        plaintext = self._decryptor.plaintext_size
        lo, hi, last = age.chunk_span(plaintext, plaintext, header.size, size)
        self._decrypt(last, prefix[lo:hi] if hi <= len(prefix) else await self._collect(lo, hi))
        return plaintext

    async def _collect(self, start: int, end: int) -> bytes:
        assert self._fetch is not None
        return b"".join([chunk async for chunk in self._fetch(start, end)])

    async def read(self, start: int, end: int) -> AsyncIterator[bytes]:
        if self._decryptor is None:
            async for chunk in super().read(start, end):
                yield chunk
            return
        assert self._fetch is not None
        lo, hi, index = age.chunk_span(start, end, self._header_size, self._stored_size)
        skip, left = start - index * age.CHUNK_SIZE, end - start
        pending = bytearray()
        async for data in self._fetch(lo, hi):
            pending += data
            while len(pending) >= age.STORED_CHUNK_SIZE:
                plain = self._decrypt(index, pending[: age.STORED_CHUNK_SIZE])
                del pending[: age.STORED_CHUNK_SIZE]
                index += 1
                out, skip = plain[skip : skip + left], 0
                left -= len(out)
                if out:
                    yield out
        if pending or left:
            out = self._decrypt(index, pending)[skip : skip + left]
            if len(out) != left:
                raise _undecryptable(age.AgeError("the object ended early"))
            if out:
                yield out

    def _decrypt(self, index: int, chunk: bytes | bytearray) -> bytes:
        assert self._decryptor is not None
        try:
            return self._decryptor.decrypt(index, chunk)
        except (age.AgeError, ValueError) as exc:
            raise _undecryptable(exc) from exc


def _identity_text(data: bytes) -> str:
    with contextlib.suppress(UnicodeDecodeError):
        if not data.startswith((b"age-encryption.org/", b"-----BEGIN AGE ENCRYPTED FILE-----")):
            return data.decode()
    raise ValueError(
        "not a text file of AGE-SECRET-KEY-1... lines "
        "(a passphrase-protected identity file cannot be used; decrypt it with age -d first)"
    )


def load_keys(recipients: Sequence[str], identity_file: str | None) -> Keys:
    """The route's keys; a ``ValueError`` naming the setting when the identity file is unreadable or wrong."""
    identities: list[X25519PrivateKey] = []
    if identity_file:
        try:
            with open(identity_file, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise ValueError(f"identity_file: cannot read {identity_file} ({exc.strerror})") from None
        try:
            identities = age.parse_identities(_identity_text(data))
        except ValueError as exc:
            raise ValueError(f"identity_file: {exc}") from None
    return Keys([age.parse_recipient(r) for r in recipients], identities)
