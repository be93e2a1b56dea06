"""``checksum``: the SHA-256 of what the client sent, and the client's own digests verified.

The SHA-256 is recorded as the object's ``sha256`` tag (hex), which GET and HEAD answer as
``Repr-Digest``; on a store that keeps no tags, it is only in the upload result.
"""

from __future__ import annotations

from typing import Any

from ..config import Settings, parse_settings
from ..digests import DigestStage, expected_digests, lowercased
from ..hookspecs import Upload, UploadStage, hookimpl

needs_plaintext = True
"""It hashes what the client sent: a route lists it before any plugin that transforms the bytes."""


class ChecksumSettings(Settings):
    pass


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> ChecksumSettings:
    return parse_settings(ChecksumSettings, settings)


@hookimpl
def aiouploader_upload_started(upload: Upload, settings: ChecksumSettings) -> None:
    if upload.form_field is None:
        expected_digests(lowercased(upload.headers))


class ChecksumStage(DigestStage):
    async def finish(self) -> bytes:
        trailing = await super().finish()
        if self._upload.keeps_tags:
            self._upload.tags["sha256"] = self._upload.checksums["sha256"]
        return trailing


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: ChecksumSettings) -> UploadStage:
    return ChecksumStage(upload)
