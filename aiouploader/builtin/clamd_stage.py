"""``virus_scan``'s clamd backend: the bytes streamed to a ClamAV daemon as they arrive."""

from __future__ import annotations

import logging

from .. import clamd
from ..errors import Infected, PayloadTooLarge, ScannerUnavailable
from ..hookspecs import Upload, UploadStage
from .virus_scan import VirusScanSettings, too_large

log = logging.getLogger("aiouploader.builtin.virus_scan")


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
            raise too_large(self._settings)
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
