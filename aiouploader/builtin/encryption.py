"""``encryption``: what S3 stores is age v1 (X25519), readable with ``age -d``.

The proxy needs only the recipients (public keys) to encrypt. With an
``identity_file`` the route also decrypts on GET, Range requests included,
fetching only the chunks they need. Objects that are not age files (stored
before the route encrypted) are served as they are.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from ..config import Settings, parse_settings
from ..hookspecs import Download, DownloadStage, Upload, UploadStage, hookimpl

if TYPE_CHECKING:
    from .encryption_stages import Keys

log = logging.getLogger(__name__)

transforms = True
"""What it stores is not what the client sent: a plugin that needs the client's bytes goes before it."""

# The stages and age (cryptography: ~6 MiB of memory) are imported when a route encrypts, not before.


class EncryptionSettings(Settings):
    recipients: list[str] = Field(min_length=1)
    identity_file: str | None = None

    @field_validator("recipients")
    @classmethod
    def _recipients(cls, value: list[str]) -> list[str]:
        from ..age import parse_recipient

        for recipient in value:
            parse_recipient(recipient)
        return value


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> Keys:
    from .encryption_stages import load_keys

    parsed = parse_settings(EncryptionSettings, settings)
    keys = load_keys(parsed.recipients, parsed.identity_file)
    recipients = {recipient.public_bytes_raw() for recipient in keys.recipients}
    if keys.identities and not any(i.public_key().public_bytes_raw() in recipients for i in keys.identities):
        log.warning(
            "encryption: identity_file holds no identity for any of the recipients: "
            "GET cannot decrypt objects stored now"
        )
    return keys


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: Keys) -> UploadStage:
    from .encryption_stages import EncryptStage

    return EncryptStage(upload, settings)


@hookimpl
def aiouploader_download_stage(download: Download, settings: Keys) -> DownloadStage | None:
    from .encryption_stages import DecryptStage

    return DecryptStage(download, settings.identities)
