"""``size_limit``: refuse bodies over ``max_size``, before reading when the length is known."""

from __future__ import annotations

from typing import Any

from ..config import Settings, Size, parse_settings
from ..errors import PayloadTooLarge
from ..hookspecs import Upload, UploadStage, hookimpl
from ..sizes import format_size


class SizeLimitSettings(Settings):
    max_size: Size = 5 * 1024**4


def _too_large(settings: SizeLimitSettings) -> PayloadTooLarge:
    return PayloadTooLarge(f"The upload is larger than the {format_size(settings.max_size)} this route accepts.")


class SizeLimitStage(UploadStage):
    """Counts the bytes received from the client (``upload.size``), not what earlier stages pass on,
    so that the limit means the same wherever the route lists the plugin; and refuses at the first block once
    the upload's length is known to be over the limit (a resumable upload may state it in a later request)."""

    def __init__(self, upload: Upload, settings: SizeLimitSettings) -> None:
        self._upload = upload
        self._settings = settings

    def _check(self) -> None:
        if max(self._upload.size, self._upload.content_length or 0) > self._settings.max_size:
            raise _too_large(self._settings)

    async def feed(self, block: bytes) -> bytes:
        self._check()
        return block

    async def finish(self) -> bytes:
        self._check()  # an earlier stage may have held back the last blocks
        return b""

    def save(self) -> bytes:
        """Nothing: the count is ``upload.size``, which the chain's saved state records and checks."""
        return b""

    def restore(self, state: bytes) -> None:
        if state:
            raise ValueError("a size_limit state holds nothing")


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> SizeLimitSettings:
    return parse_settings(SizeLimitSettings, settings)


@hookimpl
def aiouploader_upload_limit(settings: SizeLimitSettings) -> int:
    return settings.max_size


@hookimpl
def aiouploader_upload_started(upload: Upload, settings: SizeLimitSettings) -> None:
    if upload.content_length is not None and upload.content_length > settings.max_size:
        raise _too_large(settings)


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: SizeLimitSettings) -> UploadStage:
    return SizeLimitStage(upload, settings)
