"""The resumable uploads this process holds between requests, and their expiry.

A :class:`ResumableUpload` keeps its :class:`~aiouploader.session.UploadSession`
live here: the stages' state and the writer's part not yet sent stay in this
process, so every request of an upload must reach it.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..errors import NotFound, UploadError
from ..hookspecs import UploadResult
from ..session import UploadSession

log = logging.getLogger(__name__)


@dataclass(eq=False)
class ResumableUpload:
    id: str
    route: str
    session: UploadSession
    scope: str
    """The key the upload was created for, before any plugin renamed it: what later credentials must cover."""
    length: int | None
    """``None`` until a deferred length is sent."""
    ttl: int
    expires: float = 0.0
    busy: bool = False
    """A request is sending its bytes."""
    received: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    """Set each time a request's bytes are all in (or it was cut), until the next one starts."""
    result: UploadResult | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    give_back: Callable[[], None] = field(default=lambda: None, repr=False)
    """Gives back the memory held for the upload between its requests."""

    @property
    def offset(self) -> int:
        return self.session.upload.size


class ResumableUploads:
    """Resumable uploads by id; one idle past its route's ``resumable_expires`` is aborted and removed."""

    def __init__(self, count: Callable[[str, str], None] | None = None) -> None:
        self._by_id: dict[str, ResumableUpload] = {}
        self.count = count or (lambda route, event: None)
        """Called with an upload's route and what happened to it (``created``, ``completed``, ``failed``...)."""
        self._ending: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._by_id)

    def add(
        self,
        route: str,
        session: UploadSession,
        scope: str,
        length: int | None,
        ttl: int,
        give_back: Callable[[], None],
    ) -> ResumableUpload:
        upload_id = secrets.token_urlsafe(24)
        upload = ResumableUpload(upload_id, route, session, scope, length, ttl, give_back=give_back)
        self._by_id[upload.id] = upload
        self.touch(upload)
        self.count(route, "created")
        log.info("resumable upload %s created", upload.id, extra={"request_id": session.upload.request_id})
        return upload

    def get(self, upload_id: str, route: str) -> ResumableUpload:
        upload = self._by_id.get(upload_id)
        if upload is None or upload.route != route or (not upload.busy and upload.expires <= time.time()):
            raise NotFound(
                "No such resumable upload here: it has expired or ended, or this instance did not create it; "
                "start the upload again."
            )
        return upload

    def touch(self, upload: ResumableUpload) -> None:
        """Idle from now: expires ``ttl`` seconds on."""
        upload.expires = time.time() + upload.ttl
        if upload.timer is not None:
            upload.timer.cancel()
        upload.timer = asyncio.get_running_loop().call_later(upload.ttl, self._expire, upload)

    def forget(self, upload: ResumableUpload, event: str = "failed") -> None:
        """Drop ``upload``, whose session has ended (``event`` says how), unless it was dropped already."""
        if upload.timer is not None:
            upload.timer.cancel()
        upload.give_back()
        if self._by_id.get(upload.id) is upload:
            del self._by_id[upload.id]
            if upload.result is None:
                self.count(upload.route, event)
                log.info(
                    "resumable upload %s %s at byte %d",
                    upload.id,
                    event,
                    upload.offset,
                    extra={"request_id": upload.session.upload.request_id},
                )

    def completed(self, upload: ResumableUpload) -> None:
        upload.give_back()
        self.count(upload.route, "completed")
        log.info("resumable upload %s completed", upload.id, extra={"request_id": upload.session.upload.request_id})

    async def end(self, upload: ResumableUpload, error: UploadError, event: str = "failed") -> None:
        """Give ``upload`` up: S3 drops its bytes, its plugins hear ``error``, it is gone."""
        self.forget(upload, event)
        await upload.session.discard(error)

    def _expire(self, upload: ResumableUpload) -> None:
        if upload.busy:
            self.touch(upload)
            return
        task = asyncio.get_running_loop().create_task(self.expire(upload))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def expire(self, upload: ResumableUpload) -> None:
        """End an upload whose time is up (its timer calls this)."""
        await self.end(upload, UploadError("The upload expired."), "expired")

    async def close(self, app: web.Application | None = None) -> None:
        """At shutdown: every upload still open is aborted."""
        for upload in list(self._by_id.values()):
            if upload.result is None:
                await self.end(upload, UploadError("The server shut down."), "abandoned")
            self.forget(upload)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)


RESUMABLE_UPLOADS: web.AppKey[ResumableUploads] = web.AppKey("resumable_uploads", ResumableUploads)
