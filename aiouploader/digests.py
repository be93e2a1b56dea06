"""The digests a client sends with a body (Content-MD5, Content-Digest, Repr-Digest, x-amz-checksum-*), verified.

A core step: every upload whose client sent one is checked, whatever plugins its route lists.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping

from .checksums import HASHES, Hash, SavableHash
from .errors import BadRequest, ChecksumMismatch
from .hash_state import saved_hash
from .hookspecs import Upload, UploadStage
from .offload import off_loop

_HEADERS = {
    "content-md5": "md5",
    "x-amz-checksum-sha256": "sha256",
    "x-amz-checksum-sha1": "sha1",
    "x-amz-checksum-crc32c": "crc32c",
    "x-amz-checksum-crc32": "crc32",
    "x-amz-checksum-crc64nvme": "crc64nvme",
}
_DIGEST_FIELDS = {"sha-256": "sha256", "sha-512": "sha512"}
TAGS = {"sha256": "sha-256"}
"""Object tags holding a digest (hex) of the bytes the client sent, by the ``Repr-Digest`` field each answers as."""
_SIZES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64, "crc32": 4, "crc32c": 4, "crc64nvme": 8}


def _decode(header: str, algorithm: str, value: str) -> bytes:
    value = value.strip()
    if re.fullmatch(rf"[0-9a-fA-F]{{{2 * _SIZES[algorithm]}}}", value):
        raise BadRequest(
            f"The {header} header holds hex digits; it takes the base64 of the {algorithm} digest's raw bytes."
        )
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"The {header} header is not valid base64 (one digest, sent once).") from None
    if len(digest) != _SIZES[algorithm]:
        raise BadRequest(
            f"The {header} header holds {len(digest)} bytes; a {algorithm} digest has {_SIZES[algorithm]}."
        )
    return digest


def lowercased(headers: Mapping[str, str]) -> dict[str, str]:
    """The headers by lower-case name, repeated fields joined with commas (RFC 9110, 5.3)."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        joined[name] = f"{joined[name]}, {value}" if name in joined else value
    return joined


def expected_digests(headers: Mapping[str, str]) -> list[tuple[str, str, bytes]]:
    """``(header, algorithm, digest)`` for every digest the client sent that we can check.

    :param headers: the request headers by lower-case name (see :func:`lowercased`).
    """
    expected = []
    for header, algorithm in _HEADERS.items():
        if header in headers and algorithm not in HASHES:  # CRC64NVME without awscrt
            raise BadRequest(
                f"The {header} header cannot be checked here; send Content-MD5, x-amz-checksum-sha256, "
                "-sha1, -crc32 or -crc32c, or Content-Digest."
            )
        if header in headers:
            expected.append((header, algorithm, _decode(header, algorithm, headers[header])))
    for header in ("content-digest", "repr-digest"):
        for member in headers.get(header, "").split(","):
            name, _, value = member.strip().partition("=")
            field = _DIGEST_FIELDS.get(name.strip().lower())
            if field is None:
                continue
            if not (value.startswith(":") and value.endswith(":") and len(value) > 1):
                raise BadRequest(f"The {header} header's {name} is not a byte sequence (:base64:).")
            expected.append((header, field, _decode(header, field, value[1:-1])))
    return expected


def repr_digest(tags: Mapping[str, str]) -> str | None:
    """The ``Repr-Digest`` field (RFC 9530) for an object's tags, ``None`` when they hold no digest."""
    members = []
    for tag, name in TAGS.items():
        value = tags.get(tag, "")
        if re.fullmatch(rf"[0-9a-f]{{{2 * _SIZES[tag]}}}", value):
            members.append(f"{name}=:{base64.b64encode(bytes.fromhex(value)).decode()}:")
    return ", ".join(members) or None


class DigestStage(UploadStage):
    """Hashes the body: the SHA-256 and every digest the client sent, checked after the last byte.

    The digests go to ``upload.checksums`` by algorithm (hex). The core puts one first in every
    pipeline that has none (a plugin's stage may be one, or a subclass) and whose client sent a digest.
    """

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._expected = [] if upload.form_field is not None else expected_digests(lowercased(upload.headers))
        self._hashes = self._new_hashes()

    def _new_hashes(self) -> dict[str, Hash]:
        names = {"sha256"} | {algorithm for _, algorithm, _ in self._expected}
        return {name: saved_hash(name) or HASHES[name]() for name in sorted(names)}

    def _update(self, block: bytes) -> None:
        for hasher in self._hashes.values():
            hasher.update(block)

    async def feed(self, block: bytes) -> bytes:
        await off_loop(self._update, block)
        return block

    async def finish(self) -> bytes:
        digests = {name: hasher.digest() for name, hasher in self._hashes.items()}
        for header, algorithm, digest in self._expected:
            if digests[algorithm] != digest:
                raise ChecksumMismatch(
                    f"The body does not match its {header} header: the bytes changed on the way; nothing was stored."
                )
        self._upload.checksums.update({name: digest.hex() for name, digest in digests.items()})
        return b""

    def save(self) -> bytes | None:
        """The digests expected and each hash's running state; ``None`` where a hash cannot save it (no
        libcrypto found)."""
        if not all(isinstance(hasher, SavableHash) for hasher in self._hashes.values()):
            return None
        expected = [[header, algorithm, digest.hex()] for header, algorithm, digest in self._expected]
        hashes = {
            name: base64.b64encode(hasher.save()).decode()
            for name, hasher in self._hashes.items()
            if isinstance(hasher, SavableHash)
        }
        return json.dumps({"version": 1, "expected": expected, "hashes": hashes}).encode()

    def restore(self, state: bytes) -> None:
        saved = json.loads(state)
        if saved.get("version") != 1:
            raise ValueError(f"a digest state of version {saved.get('version')!r}")
        self._expected = [(header, algorithm, bytes.fromhex(digest)) for header, algorithm, digest in saved["expected"]]
        self._hashes = self._new_hashes()
        if self._hashes.keys() != saved["hashes"].keys():
            raise ValueError("a digest state for other algorithms")
        for name, hasher in self._hashes.items():
            if not isinstance(hasher, SavableHash):
                raise ValueError(f"{name} cannot take up a saved state here (no libcrypto found)")
            hasher.restore(base64.b64decode(saved["hashes"][name]))
