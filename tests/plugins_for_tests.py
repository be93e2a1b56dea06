"""Small plugins that exercise the hook surface from the outside, as a team's plugin would."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.errors import Forbidden


class _TagStage(UploadStage):
    def __init__(self, tag: bytes, log: list[str]) -> None:
        self._tag = tag
        self._log = log

    async def feed(self, block: bytes) -> bytes:
        self._log.append(f"{self._tag.decode()}:feed")
        return block

    async def finish(self) -> bytes:
        self._log.append(f"{self._tag.decode()}:finish")
        return self._tag

    async def close(self) -> None:
        self._log.append(f"{self._tag.decode()}:close")


class Tag:
    """Appends its tag after the last byte, so the stored bytes show the chain order."""

    def __init__(self, tag: str) -> None:
        self.tag = tag.encode()
        self.log: list[str] = []

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _TagStage(self.tag, self.log)


class _VetoStage(UploadStage):
    def __init__(self, after: int) -> None:
        self._after = after
        self._seen = 0

    async def feed(self, block: bytes) -> bytes:
        self._seen += len(block)
        if self._seen > self._after:
            raise Forbidden("vetoed by the test plugin")
        return block


class VetoAfter:
    """Vetoes once more than ``after`` bytes went by (``after`` from its settings)."""

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> int:
        return int(settings.get("after", 0))

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: int) -> UploadStage:
        return _VetoStage(settings)


class _BoomStage(UploadStage):
    async def finish(self) -> bytes:
        raise RuntimeError("secret internal detail")


class Boom:
    """Fails with a plain exception after the last byte."""

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: Any) -> UploadStage:
        return _BoomStage()


class Lifecycle:
    """Records lifecycle calls; renames keys that start with ``rename-me``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    @hookimpl
    def aiouploader_upload_started(self, upload: Upload, settings: Any) -> None:
        self.events.append(("started", upload.key))
        if upload.key.startswith("rename-me"):
            upload.key = "renamed/" + upload.key
        upload.metadata["team"] = "blue"

    @hookimpl
    def aiouploader_upload_completed(self, upload: Upload, result: dict[str, Any], settings: Any) -> None:
        self.events.append(("completed", result["key"]))

    @hookimpl
    def aiouploader_upload_failed(self, upload: Upload, error: Exception, settings: Any) -> None:
        self.events.append(("failed", type(error).__name__))


class _BlockingStage(UploadStage):
    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    async def feed(self, block: bytes) -> bytes:
        time.sleep(self._seconds)  # noqa: ASYNC251 - the mistake this plugin exists to make
        return block


class Blocking:
    """Holds the event loop for ``seconds`` (0.5 unless its settings say) in each ``feed``, as blocking code would."""

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> float:
        return float(settings.get("seconds", 0.5))

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: float) -> UploadStage:
        return _BlockingStage(settings)


class Counting:
    """Counts its lifecycle hooks by upload key; refuses in ``upload_started`` keys that start with ``refused``.

    It has no stage, so a direct route may list it.
    """

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def of(self, key: str) -> dict[str, int]:
        return {hook: self.calls[hook, key] for hook in ("started", "completed", "failed")}

    @hookimpl
    def aiouploader_upload_started(self, upload: Upload) -> None:
        self.calls["started", upload.key] += 1
        if upload.key.startswith("refused"):
            raise Forbidden("refused by the test plugin")

    @hookimpl
    def aiouploader_upload_completed(self, upload: Upload) -> None:
        self.calls["completed", upload.key] += 1

    @hookimpl
    def aiouploader_upload_failed(self, upload: Upload) -> None:
        self.calls["failed", upload.key] += 1


class _LabelStage(UploadStage):
    def __init__(self, upload: Upload, when: str) -> None:
        self._upload = upload
        self._when = when
        self._lines = 0

    async def feed(self, block: bytes) -> bytes:
        self._lines += block.count(b"\n")
        if self._when == "feed":
            self._upload.metadata["lines"] = str(self._lines)
        return block

    async def finish(self) -> bytes:
        if self._when == "finish":
            self._upload.metadata["lines"] = str(self._lines)
        elif self._when == "finish-key":
            self._upload.key += ".txt"
        return b""


class Label:
    """Records ``x-amz-meta-lines`` when its settings' ``when`` says: ``stage`` (as its stage is made, with what
    the headers claim), or ``feed``, ``finish``, ``finish-key`` (too late: S3 already has the object's metadata)."""

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> str:
        return str(settings.get("when", "stage"))

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: str) -> UploadStage:
        if settings == "stage":
            upload.metadata["lines"] = upload.headers.get("X-Lines", "unknown")
        return _LabelStage(upload, settings)


class _LineCountStage(UploadStage):
    def __init__(self, upload: Upload, extra: dict[str, str]) -> None:
        self._upload = upload
        self._extra = extra
        self._lines = 0

    async def feed(self, block: bytes) -> bytes:
        self._lines += block.count(b"\n")
        return block

    async def finish(self) -> bytes:
        self._upload.tags["lines"] = str(self._lines)
        self._upload.tags.update(self._extra)
        return b""


class LineCount:
    """Records the body's line count as the object's ``lines`` tag in ``finish``, with the tags its settings'
    ``extra`` holds (to record too many, or ones S3 refuses)."""

    @hookimpl
    def aiouploader_configure(self, settings: dict[str, Any]) -> dict[str, str]:
        return dict(settings.get("extra", {}))

    @hookimpl
    def aiouploader_upload_stage(self, upload: Upload, settings: dict[str, str]) -> UploadStage:
        return _LineCountStage(upload, settings)
