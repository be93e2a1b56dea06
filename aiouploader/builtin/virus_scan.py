"""``virus_scan``: a verdict on every upload before it is completed in S3.

Backends: ``clamd`` streams the bytes to a ClamAV daemon as they arrive;
``stub`` only recognises the EICAR test string and exists for demos and
tests without ClamAV: it protects against nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from .. import clamd
from ..config import Settings, Size, parse_settings
from ..eicar import EICAR
from ..errors import Infected, PayloadTooLarge, ScannerUnavailable
from ..hookspecs import Upload, UploadStage, hookimpl
from ..sizes import format_size

log = logging.getLogger(__name__)

needs_plaintext = True
"""It scans what the client sent: a route lists it before any plugin that transforms the bytes."""
EICAR_NAME = "Eicar-Test-Signature"


class VirusScanSettings(Settings):
    backend: Literal["stub", "clamd"] = "stub"
    clamd_address: str = "tcp://127.0.0.1:3310"
    timeout: float = Field(10.0, gt=0)
    max_size: Size = 25 * 1024**2
    fail_open: bool = False

    @field_validator("clamd_address")
    @classmethod
    def _address(cls, value: str) -> str:
        clamd.parse_address(value)
        return value

    @field_validator("max_size")
    @classmethod
    def _room_to_scan(cls, value: int, info: ValidationInfo) -> int:
        if value == 0 and info.data.get("backend") == "clamd":
            raise ValueError('must be above 0 with backend = "clamd", or every upload with a body gets 413')
        return value


def _too_large(settings: VirusScanSettings) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The upload is larger than the {format_size(settings.max_size)} the virus scanner accepts "
        "(virus_scan.max_size); it was not stored unscanned."
    )


def _over_clamd_limit() -> PayloadTooLarge:
    return PayloadTooLarge(
        "The upload is larger than the virus scanner can scan (clamd's StreamMaxLength); it was not stored unscanned."
    )


def _unavailable(upload: Upload, settings: VirusScanSettings, exc: clamd.ClamdError) -> bool:
    """Whether to go on unscanned (``fail_open``); otherwise raise ``scanner_unavailable``."""
    extra = {"request_id": upload.request_id}
    if settings.fail_open:
        log.warning(
            "request %s: virus scanner unavailable, upload stored UNSCANNED (fail_open): %s",
            upload.request_id,
            exc,
            extra=extra,
        )
        upload.reports["virus_scan"] = {"verdict": "unscanned", "backend": "clamd"}
        return True
    log.warning("request %s: virus scanner unavailable, upload refused: %s", upload.request_id, exc, extra=extra)
    raise ScannerUnavailable("The virus scanner is unavailable; retry later.") from exc


class StubStage(UploadStage):
    """Finds EICAR anywhere in the stream, across block boundaries too."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._tail = b""

    async def feed(self, block: bytes) -> bytes:
        if EICAR in self._tail + block[: len(EICAR) - 1] or EICAR in block:
            raise Infected(EICAR_NAME)
        self._tail = (self._tail + block[-(len(EICAR) - 1) :])[-(len(EICAR) - 1) :]
        return block

    def save(self) -> bytes:
        """The last bytes seen, where EICAR may start and the next block end it."""
        return self._tail

    def restore(self, state: bytes) -> None:
        if len(state) >= len(EICAR):
            raise ValueError("a stub scan state longer than the EICAR string")
        self._tail = state

    async def finish(self) -> bytes:
        self._upload.reports["virus_scan"] = {"verdict": "clean", "backend": "stub"}
        return b""


class ClamdStage(UploadStage):
    movable = False
    """clamd holds the INSTREAM scan: no other process, and no other clamd, can go on with it."""

    def __init__(self, upload: Upload, settings: VirusScanSettings) -> None:
        self._upload = upload
        self._settings = settings
        self._session: clamd.ScanSession | None = None
        self._skipped = False
        self._seen = 0

    async def feed(self, block: bytes) -> bytes:
        self._seen += len(block)
        if self._seen > self._settings.max_size:
            raise _too_large(self._settings)
        if self._skipped:
            return block
        try:
            if self._session is None:
                self._session = await clamd.ScanSession.open(self._settings.clamd_address, self._settings.timeout)
            await self._session.send(block)
        except clamd.ClamdLimitExceeded:
            raise _over_clamd_limit() from None
        except clamd.ClamdError as exc:
            self._skipped = _unavailable(self._upload, self._settings, exc)
        return block

    async def finish(self) -> bytes:
        if self._skipped:
            return b""
        try:
            if self._session is None:
                self._session = await clamd.ScanSession.open(self._settings.clamd_address, self._settings.timeout)
            signature = await self._session.verdict()
        except clamd.ClamdLimitExceeded:
            raise _over_clamd_limit() from None
        except clamd.ClamdError as exc:
            _unavailable(self._upload, self._settings, exc)
            return b""
        if signature is not None:
            raise Infected(signature)
        self._upload.reports["virus_scan"] = {"verdict": "clean", "backend": "clamd"}
        return b""

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> VirusScanSettings:
    return parse_settings(VirusScanSettings, settings)


@hookimpl
def aiouploader_upload_started(upload: Upload, settings: VirusScanSettings) -> None:
    if settings.backend == "clamd" and (upload.content_length or 0) > settings.max_size:
        raise _too_large(settings)


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: VirusScanSettings) -> UploadStage:
    if settings.backend == "clamd":
        return ClamdStage(upload, settings)
    return StubStage(upload)
