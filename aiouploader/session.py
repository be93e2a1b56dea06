"""One upload's whole life: started, body segments, commit or discard, completed or failed.

An :class:`UploadSession` is the only thing that tracks an upload's state.
Handlers create one per object (a PUT, a raw POST, each file of a form) and
drive it; however the request goes (a body, ``Expect: 100-continue``, a
direct route's ``307``, a refusal, a cancellation), each lifecycle hook runs
at most once per plugin: ``upload_started`` when the session starts, then
exactly one of ``upload_completed`` or ``upload_failed`` if it started,
except for a ``307``, whose bytes S3 receives without the server (the session
is then :attr:`Phase.HANDED_OFF`, neither completed nor failed). It asks the
store for nothing but what :class:`~aiouploader.s3.ObjectStore` offers (a
writer, an abort, a presigned URL, a delete), so any store will do::

    NEW        --start-->            STARTED     (refused by a hook: FAILED)
    STARTED    --hand_off-->         HANDED_OFF  (a 307; no URL from the store: FAILED)
    STARTED, RECEIVING --pause-->    PAUSED      (goes on as data: take_up in a new session, STARTED or RECEIVING)
    STARTED    --receive, 1..n-->    RECEIVING   (a body error, a stage's veto, S3's refusal: FAILED)
    RECEIVING  --seal-->             STAGED      (a stage's veto in finish: FAILED)
    STAGED     --commit-->           COMPLETED   (S3's refusal: FAILED)
    COMPLETED  --retract-->          COMPLETED   (the object deleted again: another file of a form failed)
    started, not ended --discard or abandon-->   FAILED

What a session holds, and what could go to another request or process:

- Plain data: the :class:`~aiouploader.hookspecs.Upload` (route, bucket, key,
  headers, metadata, size so far, checksums, reports), the
  :class:`UploadLimits`, the :class:`Phase`, and on the S3 side the
  multipart upload's id and the ETags of the parts written so far. A
  segment boundary is a block boundary: nothing of the body is held between
  two segments except what the writer has not sent yet.
- Live: the object store (the S3 client and its connections); the writer's
  blocks and the parts' tasks in flight; the plugins' stages (hash objects, a
  scanner's connection, an encryption stream's state); the function reading
  the current request's body. The stages hand their state over as data
  between two blocks: :meth:`Pipeline.save` gives it as one sealed blob, and
  :meth:`Chain.restore` builds new stages from it, in any process with the
  same ``server.state_key``. A pipeline with a stage that cannot move
  (:meth:`Pipeline.unmovable`, e.g. a clamd scan) or does not save its state
  stays live in this process: a later segment must come here, and one that
  comes elsewhere is refused with :class:`~aiouploader.errors.CannotResume`
  (410, start again). Between two segments a session goes to another process
  as data (:meth:`UploadSession.pause`, :meth:`UploadSession.take_up`): the
  sealed stage state, the writer's :class:`~aiouploader.s3.Paused` progress,
  and the tail under S3's 5 MiB minimum, which the caller keeps (a resumable
  upload in an object of its own: :mod:`aiouploader.tus.stored`).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass

from . import tags
from .body import Read, blocks
from .chain import Chain, Pipeline
from .errors import PayloadTooLarge, UploadError, UpstreamError
from .hookspecs import Upload, UploadResult
from .keys import check_key
from .s3 import KEPT_HEADERS, ObjectStore, ObjectWriter, Paused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadLimits:
    """What one upload may do: plain data, the same for every segment."""

    block_size: int
    """Bytes the stages get at once (the last block may be shorter)."""
    idle_timeout: float
    """Seconds a segment may send nothing."""
    total_timeout: float = math.inf
    """Seconds a segment may take in all."""
    max_size: int | None = None
    """The most body bytes the upload may have (a signed URL's bound, what is left of a form's)."""
    if_none_match: bool = False
    """Store only where no object is yet (S3 conditional write)."""


class Phase(enum.Enum):
    NEW = "new"
    STARTED = "started"
    RECEIVING = "receiving"
    STAGED = "staged"
    COMPLETED = "completed"
    FAILED = "failed"
    HANDED_OFF = "handed_off"
    PAUSED = "paused"
    """Gone on as data to another request or process (:meth:`UploadSession.pause`)."""


ENDED = (Phase.COMPLETED, Phase.FAILED, Phase.HANDED_OFF, Phase.PAUSED)


def kept_headers(upload: Upload) -> dict[str, str]:
    """The upload's headers that S3 keeps with the object (none for a form's file: they describe the form)."""
    if upload.form_field is not None:
        return {}
    return {
        name: value
        for name in KEPT_HEADERS
        if (value := upload.headers.get(name, "").strip()) and value.isascii() and value.isprintable()
    }


async def _cleanup(awaitable: Awaitable[None]) -> None:
    """Run clean-up to its end even when the task that needs it is being cancelled."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await task
        raise


class UploadSession:
    """One upload, from its ``upload_started`` hooks to its result or its error."""

    def __init__(self, store: ObjectStore, chain: Chain, upload: Upload, limits: UploadLimits) -> None:
        self.store = store
        self.chain = chain
        self.upload = upload
        self.limits = limits
        self.phase = Phase.NEW
        self._pipeline: Pipeline | None = None
        self._writer: ObjectWriter | None = None
        self._result: UploadResult | None = None
        self._tags = tags.TagWatch(upload)

    @property
    def ended(self) -> bool:
        return self.phase in ENDED

    def start(self) -> None:
        """Run the ``upload_started`` hooks, before any body byte is read; a refusal ends the session."""
        if self.phase is not Phase.NEW:
            return
        self.phase = Phase.STARTED
        try:
            self.chain.started(self.upload, self._tags)
        except UploadError as exc:
            self._fail(exc)
            raise

    async def hand_off(self, *, expires_in: int, content_length: int | None, content_type: str | None) -> str:
        """The client sends the bytes to S3 itself (a direct route's ``307``): the URL it sends them to, good for
        ``expires_in`` seconds and, when given, only ``content_length`` bytes of ``content_type``.

        The session ends here, or fails when the store gives no URL.
        """
        self.start()
        if self.phase is not Phase.STARTED:
            raise RuntimeError(f"A {self.phase.value} upload cannot be handed off.")
        upload = self.upload
        try:
            url = await self.store.presign_put(
                upload.bucket,
                upload.s3_key,
                expires_in=expires_in,
                content_length=content_length,
                content_type=content_type,
                if_none_match=self.limits.if_none_match,
            )
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc
        self.phase = Phase.HANDED_OFF
        return url

    def _open(self) -> tuple[Pipeline, ObjectWriter]:
        """The stages and the S3 writer, made when the first segment comes."""
        if self._pipeline is None or self._writer is None:
            try:
                check_key(self.upload.key, self.upload.prefix)
                self._pipeline = self.chain.pipeline(self.upload, self._tags)
            except UploadError as exc:
                self._fail(exc)
                raise
            self._writer = self._new_writer()
            self.phase = Phase.RECEIVING
        return self._pipeline, self._writer

    def _new_writer(self) -> ObjectWriter:
        upload = self.upload
        return self.store.writer(
            upload.bucket,
            upload.s3_key,
            content_type=upload.content_type,
            metadata=upload.metadata,
            headers=kept_headers(upload),
            content_length=upload.content_length,
            if_none_match=self.limits.if_none_match,
        )

    @property
    def movable(self) -> bool:
        """Whether :meth:`pause` can hand the session on: its stages, if made yet, can move and save their state."""
        return self._pipeline is None or (self.chain.state_key is not None and not self._pipeline.unmovable())

    async def pause(self, upload_id: str) -> tuple[bytes | None, Paused | None, bytearray]:
        """Hand the session on as data, sealed for ``upload_id``, and hold nothing (:attr:`Phase.PAUSED`): the
        stages' state and the writer's progress (``None`` before the first segment), and the bytes S3 has not
        taken yet. :raise CannotResume: a stage cannot move or save its state; the session is as it was."""
        if self.phase not in (Phase.STARTED, Phase.RECEIVING):
            raise RuntimeError(f"A {self.phase.value} upload cannot be paused.")
        pipeline, writer = self._pipeline, self._writer
        if pipeline is None or writer is None:
            self.phase = Phase.PAUSED
            return None, None, bytearray()
        blob = pipeline.save(upload_id)
        try:
            paused, tail = await writer.pause()
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc
        self.phase = Phase.PAUSED
        self._writer = None
        await _cleanup(pipeline.close())
        return blob, paused, tail

    async def take_up(self, upload_id: str, blob: bytes | None, paused: Paused | None, tail: bytes) -> None:
        """Go on, in a new session of the same upload (as it was then), with what :meth:`pause` gave; the
        ``upload_started`` hooks do not run again. :raise CannotResume: see :meth:`Chain.restore`."""
        if self.phase is not Phase.NEW:
            raise RuntimeError(f"A {self.phase.value} upload cannot take up another's state.")
        self.phase = Phase.STARTED
        if blob is None or paused is None:
            return
        self._pipeline = await self.chain.restore(self.upload, blob, upload_id, self._tags)
        self._writer = self._new_writer()
        self._writer.resume(paused, tail)
        self.phase = Phase.RECEIVING

    async def receive(self, read: Read) -> None:
        """Stream one segment of the body (``read`` to its end) through the stages into S3."""
        self.start()
        if self.phase not in (Phase.STARTED, Phase.RECEIVING):
            raise RuntimeError(f"A {self.phase.value} upload takes no more body.")
        await self._learn_tags()
        pipeline, writer = self._open()
        limits = self.limits
        try:
            async for block in blocks(read, limits.block_size, limits.idle_timeout, limits.total_timeout):
                self.upload.size += len(block)
                if limits.max_size is not None and self.upload.size > limits.max_size:
                    raise PayloadTooLarge(
                        f"The upload is larger than the {limits.max_size} bytes its credentials allow."
                    )
                await writer.write(await pipeline.feed(block))
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc

    async def seal(self, *, send_all: bool = False) -> None:
        """After the last segment: the stages finish (a veto ends the upload), S3 holds every byte but shows none.

        With ``send_all`` every byte is in S3 on return, none held in memory until :meth:`commit`.
        """
        await self._learn_tags()
        pipeline, writer = self._open()
        try:
            await writer.write(await pipeline.finish())
            self._check_tags_kept()
            if send_all:
                await writer.send_all()
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc
        await _cleanup(pipeline.close())
        self.phase = Phase.STAGED

    async def _learn_tags(self) -> None:
        """Whether the bucket keeps object tags, before the stages are made: they may ask."""
        if self.upload.keeps_tags is not None:
            return
        try:
            reason = await tags.support(self.store, self.upload.bucket, self.upload.prefix)
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc
        self.upload.keeps_tags = reason is None

    def _check_tags_kept(self) -> None:
        upload = self.upload
        if upload.tags and not upload.keeps_tags:
            names = ", ".join(repr(name) for name in sorted(set(self._tags.origins.values())))
            raise UpstreamError(
                f"The route's plugins ({names}) record object tags, which S3 does not keep in this bucket "
                f"({self.store.tag_support.get(upload.bucket)}); nothing was stored."
            )

    async def stage(self, read: Read, *, send_all: bool = False) -> None:
        """A body that comes in one segment: :meth:`receive` it, then :meth:`seal`."""
        await self.receive(read)
        await self.seal(send_all=send_all)

    async def commit(self) -> UploadResult:
        """Make the object visible; the upload result. On failure nothing is at the key."""
        if self.phase is not Phase.STAGED or self._writer is None:
            raise RuntimeError(f"A {self.phase.value} upload cannot be committed.")
        try:
            stored = await self._writer.complete(self.upload.tags)
        except BaseException as exc:
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc
        upload = self.upload
        if upload.tags and not stored.tagged:
            await self._record(dict(upload.tags), stored.version_id)
        result = UploadResult(
            bucket=upload.bucket,
            key=upload.s3_key,
            size=upload.size,
            stored_size=stored.stored_size,
            etag=stored.etag,
            version_id=stored.version_id,
            content_type=upload.content_type,
            checksums=upload.checksums,
            stored_checksums=stored.checksum,
            plugins=upload.reports,
        )
        self.phase = Phase.COMPLETED
        self._result = result
        self.chain.completed(upload, result)
        return result

    async def retract(self) -> None:
        """Delete the object :meth:`commit` stored (that version only): the upload it belonged to failed as a
        whole. Its plugins have heard it completed; they hear nothing more."""
        if self._result is None:
            raise RuntimeError(f"A {self.phase.value} upload has no object to retract.")
        result, self._result = self._result, None
        await _cleanup(self.store.delete(result["bucket"], result["key"], result["version_id"]))

    async def _record(self, values: dict[str, str], version_id: str | None) -> None:
        """Tag the object S3 completed; when that fails, remove the object and end the upload with the error."""
        upload = self.upload
        try:
            await tags.record(self.store, upload.bucket, upload.s3_key, values, version_id)
        except BaseException as exc:
            await _cleanup(self._remove(version_id))
            self._writer = None  # completed: nothing is left to abort
            if (error := await self._end(exc)) is None:
                raise
            raise error from exc

    async def _remove(self, version_id: str | None) -> None:
        upload = self.upload
        try:
            await self.store.delete(upload.bucket, upload.s3_key, version_id)
        except UploadError as exc:
            log.error(
                "request %s: %s/%s is stored without its tags, and removing it failed: %s",
                upload.request_id,
                upload.bucket,
                upload.s3_key,
                exc.message,
                extra={"request_id": upload.request_id},
            )

    async def discard(self, error: UploadError) -> None:
        """Give the upload up: S3 drops its bytes, the plugins hear ``error``."""
        await self.abandon(error)

    async def abandon(self, exc: BaseException) -> None:
        """End a session that the request gave up on (``exc``, whatever it is) unless it ended already."""
        if self.phase is Phase.NEW or self.ended:
            return
        await self._end(exc)

    async def _end(self, exc: BaseException) -> UploadError | None:
        """Abort what S3 holds, tell the plugins, close the stages; the error to answer with, ``None`` when the
        upload was cancelled (re-raise ``exc`` then).

        Callers raise from their ``except`` block, which lets go of ``exc``: a frame that held it would keep
        the writer's buffers alive until the garbage collector finds the cycle.
        """
        pipeline = self._pipeline if self.phase is Phase.RECEIVING else None
        try:
            if self._writer is not None:
                await _cleanup(self._writer.abort())
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                self._fail(UploadError("The upload was cancelled."))
                return None
            if isinstance(exc, UploadError):
                error = exc
            else:
                log.exception("upload %s failed", self.upload.request_id, exc_info=exc)
                error = UploadError("The upload failed inside the server; nothing was stored.")
            self._fail(error)
            return error
        finally:
            if pipeline is not None:
                await _cleanup(pipeline.close())

    def _fail(self, error: UploadError) -> None:
        if not self.ended:
            self.phase = Phase.FAILED
            self.chain.failed(self.upload, error)
