"""Resumable uploads between their requests: held in this process, or kept in their bucket; their expiry.

Without ``server.state_key``, a :class:`ResumableUpload` keeps its
:class:`~aiouploader.session.UploadSession` live here: the stages' state and
the writer's part not yet sent stay in this process, so every request of an
upload must reach it. With it, each request ends by pausing the session
into the bucket (:mod:`.stored`, :mod:`.states`), and any replica with the
same key takes the next one up; only an upload whose stages cannot move (a
clamd scan) stays live here, and other replicas answer its requests with 410.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from ..errors import CannotResume, NotFound, UploadBusy, UploadError
from ..hookspecs import UploadResult
from ..routes import Route
from ..service import Service
from ..session import Phase, UploadSession
from .states import UploadStates
from .stored import StoredUpload

log = logging.getLogger(__name__)

_ID = re.compile(r"[A-Za-z0-9_-]{32}")
"""An upload's id: 24 random bytes, URL-safe base64."""


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
    stored: StoredUpload | None = field(default=None, repr=False)
    """Its state in the bucket as this process last read or wrote it (with ``server.state_key``)."""
    etag: str | None = None
    """The ETag of that state."""
    lease: str | None = None
    """This request's lease on the upload, once taken."""
    tail_at: str | None = None
    """The key of the tail its state names, if any: dropped once a new state names another."""
    elsewhere: bool = False
    """Held live by another replica (its stages cannot move): only HEAD and GET are answered here."""
    taken_at: int = 0
    """Its offset when this request took it up."""
    gone: bool = False
    """It has ended, and was counted so."""

    @property
    def offset(self) -> int:
        return self.session.upload.size

    @property
    def bucket(self) -> str:
        return self.session.upload.bucket


def carried_on(service: Service, route: Route, stored: StoredUpload) -> UploadSession:
    """A session for an upload kept in its bucket, as it was when its last request ended; not taken up yet."""
    limits = dataclasses.replace(
        service.limits,
        max_size=stored.max_size,
        if_none_match=stored.if_none_match,
        idle_timeout=math.inf,
        total_timeout=math.inf,
    )
    return UploadSession(service.s3, route.chain, stored.upload, limits)


class ResumableUploads:
    """Resumable uploads by id; one idle past its route's ``resumable_expires`` is aborted and removed."""

    def __init__(self, count: Callable[[str, str], None] | None = None) -> None:
        self._by_id: dict[str, ResumableUpload] = {}
        self.states: UploadStates | None = None
        """The uploads' state in their buckets, with ``server.state_key``; set at start-up."""
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

    async def find(
        self, upload_id: str, route: str, bucket: str, session_for: Callable[[StoredUpload], UploadSession]
    ) -> ResumableUpload:
        """The upload, held here or kept in ``bucket``; :class:`NotFound` when it has expired or ended."""
        if upload_id in self._by_id or self.states is None or not _ID.fullmatch(upload_id):
            return self.get(upload_id, route)
        try:
            stored, etag = await self.states.read(bucket, upload_id)
        except NotFound:
            stored = None
        if stored is None or stored.route != route or (not stored.busy() and stored.expires <= time.time()):
            return self.get(upload_id, route)  # not found
        upload = ResumableUpload(
            upload_id, route, session_for(stored), stored.scope, stored.length, stored.ttl, stored.expires,
            busy=stored.busy(), result=stored.result, stored=stored, etag=etag, elsewhere=stored.held,
            tail_at=stored.tail_key,
        )  # fmt: skip
        return upload

    async def take_up(self, upload: ResumableUpload) -> None:
        """Before a request sends bytes to an upload kept in its bucket: lease it, and take its session up."""
        stored = upload.stored
        if self.states is None or stored is None or upload.id in self._by_id:
            return
        if upload.elsewhere:
            raise CannotResume("another instance holds it, as its checks cannot move; send its requests there")
        upload.lease, upload.etag = await self.states.take(upload.bucket, stored, upload.etag or "")
        upload.taken_at = upload.offset
        try:
            tail = await self.states.read_tail(upload.bucket, stored)
            await upload.session.take_up(upload.id, stored.chain, stored.writer, tail)
        except CannotResume as exc:
            await self.end(upload, exc)
            raise

    async def settle(self, upload: ResumableUpload) -> None:
        """At the end of a request whose bytes are in S3: keep the upload's state in its bucket, and let go of it
        here unless its stages cannot move."""
        if self.states is None:
            return
        session, states = upload.session, self.states
        stored = upload.stored or StoredUpload(
            upload.id, upload.route, upload.scope, upload.length, upload.ttl, 0.0, session.upload
        )
        stored.upload, stored.length, stored.lease, stored.held = session.upload, upload.length, None, False
        stored.max_size, stored.if_none_match = session.limits.max_size, session.limits.if_none_match
        stored.expires = time.time() + upload.ttl
        if upload.result is not None:
            stored.result, stored.chain, stored.writer, stored.tail = upload.result, None, None, 0
        elif session.movable:
            try:
                stored.chain, stored.writer, tail = await session.pause(upload.id)
            except CannotResume:
                stored.held = True
            else:
                await states.put_tail(upload.bucket, stored, tail)
        else:
            stored.held = True
        upload.stored = stored
        try:
            upload.etag = await states.write(upload.bucket, stored, upload.etag)
        except UploadError as exc:
            if upload.result is None:
                raise
            # The object is stored: the client gets its result; the state goes when its lease and expiry pass.
            log.warning("resumable upload %s completed, but its state was not saved: %s", upload.id, exc.message)
            self.release(upload)
            return
        upload.lease = None
        if stored.writer is not None and stored.writer.upload_id is not None:
            states.s3.in_progress.discard(stored.writer.upload_id)  # its state in the bucket keeps it from the sweep
        if upload.tail_at is not None and upload.tail_at != stored.tail_key:
            await states.drop_tail(upload.bucket, upload.tail_at)
        upload.tail_at = stored.tail_key
        if not stored.held:
            self.release(upload)
        elif upload.id not in self._by_id:
            self._by_id[upload.id] = upload
            self.touch(upload)

    def release(self, upload: ResumableUpload) -> None:
        """Let go of an upload that goes on elsewhere (its state is in its bucket)."""
        if upload.timer is not None:
            upload.timer.cancel()
        upload.give_back()
        if self._by_id.get(upload.id) is upload:
            del self._by_id[upload.id]

    async def let_go(self, upload: ResumableUpload) -> None:
        """After a request that failed before any of its bytes went in: give its lease back, the state as it was.

        Once bytes went in, the state in the bucket no longer matches the session: the lease is left to pass, and
        the upload goes on from that state (the client sends those bytes again).
        """
        if self.states is None or upload.lease is None or upload.stored is None:
            return
        if upload.offset != upload.taken_at:
            log.warning("resumable upload %s stays leased until its lease passes", upload.id)
            return
        upload.stored.lease = None
        try:
            upload.etag = await self.states.write(upload.bucket, upload.stored, upload.etag)
        except UploadError as exc:
            log.warning("resumable upload %s stays leased until its lease passes: %s", upload.id, exc.message)
        upload.lease = None

    def touch(self, upload: ResumableUpload) -> None:
        """Idle from now: expires ``ttl`` seconds on (by its timer, while this process holds it)."""
        upload.expires = time.time() + upload.ttl
        if upload.timer is not None:
            upload.timer.cancel()
            upload.timer = None
        if self._by_id.get(upload.id) is upload:
            upload.timer = asyncio.get_running_loop().call_later(upload.ttl, self._expire, upload)

    def forget(self, upload: ResumableUpload, event: str = "failed") -> None:
        """Drop ``upload``, whose session has ended (``event`` says how), unless it was dropped already."""
        if upload.timer is not None:
            upload.timer.cancel()
        upload.give_back()
        if self._by_id.get(upload.id) is upload:
            del self._by_id[upload.id]
        if not upload.gone:
            upload.gone = True
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
        """Give ``upload`` up: S3 drops its bytes, its plugins hear ``error``, it is gone (its state too)."""
        self.forget(upload, event)
        session = upload.session
        if session.phase is Phase.PAUSED:  # handed on as data, whose saving failed
            session.chain.failed(session.upload, error)
        else:
            if session.phase is Phase.NEW:  # kept in the bucket: its plugins hear it here
                await session.take_up(upload.id, None, None, b"")
            await session.discard(error)
        await asyncio.shield(self.remove(upload))

    async def remove(self, upload: ResumableUpload) -> None:
        """What an ended upload keeps in its bucket (its state, its tails, its multipart upload) is removed."""
        if self.states is None or upload.stored is None:
            return
        stored, upload.stored = upload.stored, None
        try:
            await self.states.remove(upload.bucket, stored)
        except UploadError as exc:
            log.error("resumable upload %s left its state in the bucket: %s", upload.id, exc.message)

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

    async def sweep(
        self, buckets: Iterable[str], session_for: Callable[[StoredUpload], UploadSession | None], now: float = 0.0
    ) -> int:
        """End the uploads kept in ``buckets`` whose time is up (as of ``now``, the present unless given), as their
        timers would; ``session_for`` gives their sessions (``None`` when their route is gone). How many ended."""
        if self.states is None:
            return 0
        now = now or time.time()
        ended = 0
        for bucket in sorted(set(buckets)):
            for upload_id in await self.states.ids(bucket):
                try:
                    stored, etag = await self.states.read(bucket, upload_id)
                    if upload_id in self._by_id or stored.busy(now) or stored.expires > now:
                        continue
                    await self.states.take(bucket, stored, etag)
                except (NotFound, UploadBusy):
                    continue
                except UploadError as exc:
                    log.warning("resumable upload %s in bucket %s is left: %s", upload_id, bucket, exc.message)
                    continue
                session = session_for(stored)
                if stored.result is not None or session is None:
                    await self.states.remove(bucket, stored)
                else:
                    upload = ResumableUpload(
                        upload_id, stored.route, session, stored.scope, stored.length, stored.ttl, stored=stored
                    )
                    await self.end(upload, UploadError("The upload expired."), "expired")
                ended += 1
        return ended

    async def keep_sweeping(self, service: Service, interval: float) -> None:
        """:meth:`sweep` the resumable routes' buckets now and every ``interval`` seconds until cancelled."""
        routes = {route.path: route for route in service.routes if route.config.resumable}

        def session_for(stored: StoredUpload) -> UploadSession | None:
            route = routes.get(stored.route)
            return None if route is None else carried_on(service, route, stored)

        while True:
            try:
                await self.sweep({route.config.bucket for route in routes.values()}, session_for)
            except Exception as exc:
                log.warning("the sweep of expired resumable uploads failed: %s", exc)
            await asyncio.sleep(interval)

    async def close(self, app: web.Application | None = None) -> None:
        """At shutdown: every upload still open is aborted, but those whose request in progress writes their
        state to the bucket (with ``server.state_key``, e.g. a creation): they go on on another instance."""
        for upload in list(self._by_id.values()):
            if self.states is not None and (upload.stored is None or not upload.stored.held):
                continue
            if upload.result is None:
                await self.end(upload, UploadError("The server shut down."), "abandoned")
            self.forget(upload)
        if self._ending:
            await asyncio.gather(*self._ending, return_exceptions=True)


RESUMABLE_UPLOADS: web.AppKey[ResumableUploads] = web.AppKey("resumable_uploads", ResumableUploads)
