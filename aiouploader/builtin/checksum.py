"""``checksum``: the SHA-256 of what the client sent, and the client's own digests verified."""

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


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: ChecksumSettings) -> UploadStage:
    return DigestStage(upload)
