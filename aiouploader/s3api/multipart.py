"""A multipart upload of the S3 API as one upload session: the client's parts pass the plugins once, in order.

One `MultipartUpload` per ``CreateMultipartUpload``, known by an unguessable id to this process only (a
deployment of several replicas routes every request of an upload id to the same one). Its
`~aiouploader.session.UploadSession` gets each client part as a segment, in part order: part N's body is
read only when parts 1 … N-1 have passed the chain; until then its request waits, its body unread on its
connection (TCP backpressure), at most ``s3_api.multipart_part_wait`` seconds (then ``RequestTimeout``;
nothing of it was read, the upload goes on and the client may send the part again). Part numbers must
therefore follow on from 1, as every SDK sends them.

A part whose bytes passed and that comes again with the same bytes (the same size and `Part.digest` of its
decoded body) is answered as before and not fed again; with other bytes it refuses the whole upload. Bytes of
a part reach the chain before its signatures and checksums are checked (they are checked when the body ends): a part
that then fails, or breaks off after its body started, discards the upload: S3's multipart upload is
aborted, nothing is stored; an AbortMultipartUpload of it still answers 204 a while. Only
``CompleteMultipartUpload`` commits; the answer of a completed upload is kept a while for the same request
sent again (`aiouploader.s3api.completed`).

While it lasts, an upload is admitted as one upload of unknown size (`Service.in_flight`, held by a task of
its own): it counts against ``server.max_uploads``, the client's limits and ``server.max_buffered``, and a
drain waits for it, then discards it. An upload that receives no request for ``s3_api.multipart_idle_timeout``
seconds is discarded too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..auth import Grant
from ..errors import Draining, UploadError
from ..routes import Route
from ..service import Service
from ..session import UploadSession
from .checksums import Checksum
from .completed import KEPT, KEPT_FOR, Completed
from .errors import NoSuchUpload, RequestTimeout, S3Error
from .responses import Refused

Read = Callable[[], Awaitable[bytes]]


@dataclass(frozen=True)
class Part:
    """A client part whose bytes passed the chain."""

    number: int
    size: int
    algorithm: str
    """The algorithm of `digest`: ``md5``, or one of the part's checksums (see `aiouploader.s3api.parts`)."""
    digest: bytes
    """The digest of the part's bytes that its ETag shows and that a retry of the part is compared by."""
    checksums: dict[str, str]
    """``x-amz-checksum-*`` header name: base64 value, for the algorithm of the upload and any the client sent."""
    last_modified: dt.datetime

    @property
    def etag(self) -> str:
        return f'"{self.digest.hex()}"'


@dataclass
class MultipartUpload:
    upload_id: str
    route: Route
    key: str
    session: UploadSession
    algorithm: str | None
    """The checksum algorithm of ``x-amz-checksum-algorithm``, computed for every part."""
    full_object: bool
    """``x-amz-checksum-type: FULL_OBJECT``: the upload's checksum is of all its bytes, not of its parts'."""
    initiated: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    parts: dict[int, Part] = field(default_factory=dict)
    whole: Checksum | None = None
    """The full-object checksum, over the bytes of the parts that passed."""
    completing: bool = False
    discarded: bool = False
    working: asyncio.Task[object] | None = None
    """The request feeding a part or completing the upload."""
    busy: int = 0
    """Requests of this upload in progress."""
    last_active: float = 0.0
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    holder: asyncio.Task[None] | None = None
    _turn: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def next_number(self) -> int:
        return len(self.parts) + 1

    async def take_turn(self, number: int, wait: float) -> Part | None:
        """Wait until part ``number`` may be fed (``None``, and the current task is the upload's worker) or has
        passed already (that part)."""
        try:
            async with asyncio.timeout(wait), self._turn:
                await self._turn.wait_for(
                    lambda: (
                        self.ended.is_set()
                        or number in self.parts
                        or (number == self.next_number and self.working is None and not self.completing)
                    )
                )
                if self.ended.is_set():
                    raise NoSuchUpload("The multipart upload was discarded while this part waited.")
                if number in self.parts:
                    return self.parts[number]
                self.working = asyncio.current_task()
                return None
        except TimeoutError:
            raise RequestTimeout(
                f"Part {number} waited {wait:g} s for the parts before it (up to {self.next_number - 1} arrived); "
                "send the parts from 1 on. Nothing of this part was read; the upload goes on."
            ) from None

    async def passed(self, part: Part | None) -> None:
        """The worker is done: with the part that passed, or ``None`` when it fed nothing."""
        async with self._turn:
            if part is not None:
                self.parts[part.number] = part
            self.working = None
            self._turn.notify_all()

    async def give_up(self, error: UploadError) -> None:
        """Discard the upload: S3's multipart upload aborted, the plugins hear ``error``; for good."""
        self.discarded = True
        worker = self.working
        if worker is not None and worker is not asyncio.current_task() and not worker.done():
            worker.cancel()
            await asyncio.wait([worker])
        await self.session.discard(error)
        await self.finish()

    async def finish(self) -> None:
        """The upload ended (completed or discarded): its id is forgotten, its waiting parts are answered."""
        self.ended.set()
        async with self._turn:
            self.working = None
            self._turn.notify_all()


class Multiparts:
    """The multipart uploads this process holds, by upload id."""

    def __init__(self, service: Service, idle_timeout: float) -> None:
        self.service = service
        self.idle_timeout = idle_timeout
        self._uploads: dict[str, MultipartUpload] = {}
        self.completed = Completed()
        """The answers of the uploads completed lately, for a CompleteMultipartUpload sent again."""
        self._discarded: OrderedDict[str, tuple[Route, str, float]] = OrderedDict()
        """The uploads discarded lately (route, key, when), for an AbortMultipartUpload sent after."""

    def of(self, route: Route) -> list[MultipartUpload]:
        return sorted(
            (u for u in self._uploads.values() if u.route is route), key=lambda u: (u.key, u.initiated, u.upload_id)
        )

    def get(self, upload_id: str, route: Route, key: str) -> MultipartUpload:
        found = self._uploads.get(upload_id)
        if found is None or found.route is not route or found.key != key or found.ended.is_set():
            raise NoSuchUpload()
        found.last_active = asyncio.get_running_loop().time()
        return found

    def discarded(self, upload_id: str, route: Route, key: str) -> bool:
        """Whether the upload was discarded (by its client, a failed part, a plugin, idleness) in the last
        `KEPT_FOR` seconds (at most the last `KEPT` of them)."""
        found = self._uploads.get(upload_id)
        if found is not None:
            return found.discarded and found.route is route and found.key == key
        gone = self._discarded.get(upload_id)
        if gone is None or gone[0] is not route or gone[1] != key:
            return False
        return asyncio.get_running_loop().time() - gone[2] < KEPT_FOR

    async def create(
        self, route: Route, key: str, session: UploadSession, grant: Grant, algorithm: str | None, full: bool
    ) -> MultipartUpload:
        """Admit and start an upload; its id is the caller's to use."""
        upload = MultipartUpload(secrets.token_urlsafe(32), route, key, session, algorithm, full)
        if full and algorithm is not None:
            upload.whole = Checksum(algorithm)
        upload.last_active = asyncio.get_running_loop().time()
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        upload.holder = asyncio.create_task(self._hold(upload, grant, admitted))
        await admitted
        try:
            session.start()
        except BaseException:
            await upload.finish()
            raise
        self._uploads[upload.upload_id] = upload
        return upload

    async def close(self) -> None:
        """Discard every upload still held (after a drain there are none)."""
        holders = [upload.holder for upload in self._uploads.values() if upload.holder is not None]
        for holder in holders:
            holder.cancel()
        if holders:
            await asyncio.wait(holders)

    async def _hold(self, upload: MultipartUpload, grant: Grant, admitted: asyncio.Future[None]) -> None:
        """Count the upload as in flight until it ends; discard it when idle too long or the server drains."""
        try:
            with self.service.in_flight(grant, None):
                admitted.set_result(None)
                await self._watch(upload)
        except (UploadError, S3Error) as exc:
            if admitted.done():
                raise
            admitted.set_exception(exc)
        finally:
            self._uploads.pop(upload.upload_id, None)
            if upload.discarded:
                self._discarded[upload.upload_id] = (upload.route, upload.key, asyncio.get_running_loop().time())
                if len(self._discarded) > KEPT:
                    self._discarded.popitem(last=False)

    async def _watch(self, upload: MultipartUpload) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not upload.ended.is_set():
                idle_for = loop.time() - upload.last_active
                if upload.busy == 0 and idle_for >= self.idle_timeout:
                    message = f"The multipart upload received nothing for {self.idle_timeout:g} s."
                    await upload.give_up(Refused(RequestTimeout(message)))
                    return
                try:
                    async with asyncio.timeout(max(self.idle_timeout - idle_for, 0.05)):
                        await upload.ended.wait()
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            await asyncio.shield(upload.give_up(Draining("The server shut down before the multipart upload ended.")))
            raise


MULTIPARTS = web.AppKey("s3_api_multiparts", Multiparts)
