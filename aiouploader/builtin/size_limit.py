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
    def __init__(self, settings: SizeLimitSettings) -> None:
        self._settings = settings
        self._seen = 0

    async def feed(self, block: bytes) -> bytes:
        self._seen += len(block)
        if self._seen > self._settings.max_size:
            raise _too_large(self._settings)
        return block


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> SizeLimitSettings:
    return parse_settings(SizeLimitSettings, settings)


@hookimpl
def aiouploader_upload_started(upload: Upload, settings: SizeLimitSettings) -> None:
    if upload.content_length is not None and upload.content_length > settings.max_size:
        raise _too_large(settings)


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: SizeLimitSettings) -> UploadStage:
    return SizeLimitStage(settings)
