"""The object writer: one object as a single PutObject when it fits one part, as a multipart upload otherwise."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import logging
import re
import urllib.parse
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..checksums import Data, b64, digest
from ..errors import NotFound, UploadError
from ..offload import off_loop
from .errors import code_and_status, maybe_stored, outcome_unknown, translate
from .integrity import FULL_OBJECT, StoredChecksumMismatch, field, object_checksum, same
from .parts import part_size_for
from .sending import Pieces, size_of
from .store import KEPT_HEADERS, Stored, version_of

if TYPE_CHECKING:
    from ..config import S3Config
    from .store import ObjectStore

log = logging.getLogger(__name__)

MANY_PARTS = 100
"""Parts from which the object's checksum is computed in a worker thread."""
FAST_CRCS = frozenset({"crc32c", "crc64nvme"})
FAST_CRC_ON_LOOP = 64 * 1024**2
"""Parts up to this size have a fast CRC computed on the event loop (an 8 MiB part's CRC32C takes about half a
millisecond, less than handing it to a thread and back); MD5 and slower checksums go through ``off_loop``."""


@dataclasses.dataclass(frozen=True)
class Paused:
    """A writer's progress between two requests, as plain data: what :meth:`ObjectWriter.resume` takes up in any
    process. The bytes under a part's size (the tail) are not in it: :meth:`ObjectWriter.pause` returns them."""

    upload_id: str | None
    """The multipart upload's, ``None`` while every byte fits in the tail."""
    parts: list[dict[str, Any]]
    """``PartNumber``, ``ETag`` and checksum of each part S3 took, in order."""
    sizes: list[int]
    store_checksums: bool
    """The store answered a part with its checksum."""


def md5_of(pieces: Pieces) -> bytes:
    return digest("md5", *pieces)


def md5_etag(md5: bytes, parts: int | None = None) -> str:
    """The ETag S3 gives an object it stored unencrypted: the MD5 of the body, or of the parts' MD5s and their count."""
    return f'"{md5.hex()}"' if parts is None else f'"{hashlib.md5(md5).hexdigest()}-{parts}"'


class ObjectWriter:
    """Writes one object: a single PutObject when it fits one part, multipart otherwise.

    :meth:`write` returns only once its bytes are buffered within
    ``part size x (parts in flight + 1)`` (see :func:`~.parts.upload_memory`),
    so the caller reads the client at the pace the store takes the parts.

    Where the store answers with the checksum of what it stored (a part's, the
    object's), it is compared with the one computed here: a part that differs
    fails the upload, an object that differs is removed, and either is an
    :class:`~.integrity.StoredChecksumMismatch` (``on_mismatch`` hears the
    operation first).
    """

    def __init__(
        self,
        store: ObjectStore,
        config: S3Config,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
        if_none_match: bool = False,
        on_mismatch: Callable[[str], object] = lambda operation: None,
    ) -> None:
        self._store = store
        self._on_mismatch = on_mismatch
        self._config = config
        self.bucket = bucket
        self.key = key
        self._attributes: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata)}
        """What S3 stores with the object: ``ContentType``, ``Metadata``, ``ContentEncoding``..."""
        self._attributes |= {KEPT_HEADERS[name]: value for name, value in (headers or {}).items()}
        self._algorithm = None if config.checksum_algorithm == "none" else config.checksum_algorithm
        self._content_length = content_length
        self._if_none_match = if_none_match
        self._pending: deque[bytes | memoryview] = deque()
        self._pending_size = 0
        self._upload_id: str | None = None
        self._creating: asyncio.Future[str] | None = None
        self._parts: list[dict[str, Any]] = []
        self._sizes: list[int] = []
        self._store_checksums = False
        """The store answered a part with its checksum: it keeps them, so it can say the object's."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(config.parts_in_flight)
        self._failure: BaseException | None = None
        self.stored_size = 0

    def checksum_args(self, body: Pieces) -> dict[str, str]:
        """Content-MD5 and the additional checksum of ``body``, as S3 takes them; CPU-bound, call off the loop."""
        args = {}
        if self._config.content_md5:
            args["ContentMD5"] = b64(digest("md5", *body))
        if self._algorithm:
            args[field(self._algorithm)] = b64(digest(self._algorithm, *body))
            args["ChecksumAlgorithm"] = self._algorithm.upper()
        return args

    async def _checksums(self, body: Pieces) -> dict[str, str]:
        slow = self._config.content_md5 or self._algorithm not in (None, *FAST_CRCS)
        size = size_of(body)
        if slow or size > FAST_CRC_ON_LOOP:
            return await off_loop(self.checksum_args, body, size)
        return self.checksum_args(body)

    def _next_part_size(self) -> int:
        return part_size_for(len(self._parts) + 1, self._config.part_size, self._content_length)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._raise_failure()
        self._pending.append(data)
        self._pending_size += len(data)
        self.stored_size += len(data)
        while self._pending_size > (size := self._next_part_size()):
            await self._send_part(size)

    def _take(self, size: int) -> list[Data]:
        """The next ``size`` pending bytes, as the blocks they were written in (the last one cut where the part
        ends): a part is sent from them as they are, with no copy into a part-sized buffer."""
        pieces: list[Data] = []
        taken = 0
        while taken < size:
            piece = self._pending.popleft()
            if len(piece) > size - taken:
                whole = memoryview(piece)
                self._pending.appendleft(whole[size - taken :])
                piece = whole[: size - taken]
            pieces.append(piece)
            taken += len(piece)
        self._pending_size -= size
        return pieces

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    async def _send_part(self, size: int) -> None:
        """Send the next ``size`` pending bytes as a part once a slot is free."""
        if self._upload_id is None:
            await self._create()
        await self._slots.acquire()
        self._raise_failure()
        body = self._take(size)
        part: dict[str, Any] = {"PartNumber": len(self._parts) + 1}
        self._parts.append(part)
        self._sizes.append(size)
        task = asyncio.create_task(self._upload_part(part, body))
        self._tasks.add(task)
        task.add_done_callback(self._part_done)

    def _part_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _create(self) -> None:
        attributes = dict(self._attributes)
        if self._algorithm:
            attributes["ChecksumAlgorithm"] = self._algorithm.upper()
        if self._algorithm in FULL_OBJECT:
            attributes["ChecksumType"] = "FULL_OBJECT"
        # Shielded: cancelled while S3 creates the upload, abort() still learns its id and aborts it.
        self._creating = asyncio.ensure_future(self._store.create_multipart_upload(self.bucket, self.key, attributes))
        try:
            self._upload_id = await asyncio.shield(self._creating)
        except Exception as exc:
            raise translate(exc, "starting the multipart upload", writing=True) from exc

    async def _upload_part(self, part: dict[str, Any], body: Pieces) -> None:
        assert self._upload_id is not None
        checksums = await self._checksums(body)
        number = part["PartNumber"]
        try:
            response = await self._store.upload_part(self.bucket, self.key, self._upload_id, number, body, checksums)
        except Exception as exc:
            raise translate(exc, f"uploading part {number}", writing=True) from exc
        if self._algorithm:
            name = field(self._algorithm)
            ours, theirs = checksums[name], response.get(name)
            if theirs is not None and not same(theirs, ours):
                self._on_mismatch("upload_part")
                raise StoredChecksumMismatch(f"part {number}", theirs, ours)
            part[name] = ours
            self._store_checksums |= theirs is not None
        part["ETag"] = response["ETag"]

    async def send_all(self) -> None:
        """Send what is left as parts of a multipart upload; the object shows only once :meth:`complete` runs.

        An empty object has no part to send: :meth:`complete` stores it.
        """
        if not self.stored_size:
            return
        if self._upload_id is None:
            await self._create()
        await self._send_rest()

    async def _send_rest(self) -> None:
        """Send the pending bytes as the last part, and wait for every part; raises if one failed."""
        if self._pending_size:
            await self._send_part(self._pending_size)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._raise_failure()

    async def complete(self, tags: Mapping[str, str] | None = None) -> Stored:
        """Send what is left and make the object visible; raises if anything failed.

        ``tags`` go with the object when it is one PutObject (:attr:`Stored.tagged`); a multipart upload's
        are the caller's to write once it is complete.
        """
        if self._upload_id is None:
            return await self._put(self._take(self._pending_size), tags or {})
        await self._send_rest()
        ours = None
        if self._algorithm and len(self._parts) <= MANY_PARTS:
            ours = object_checksum(self._algorithm, self._parts, self._sizes)
        elif self._algorithm:  # a full-object checksum takes 0.1 ms a part
            ours = await asyncio.to_thread(object_checksum, self._algorithm, self._parts, self._sizes)
        whole = {}
        if self._algorithm in FULL_OBJECT and ours is not None:
            whole = {field(self._algorithm): ours, "ChecksumType": "FULL_OBJECT"}
        try:
            response = await self._store.complete_multipart_upload(
                self.bucket, self.key, self._upload_id, self._parts, if_none_match=self._if_none_match, checksums=whole
            )
        except Exception as exc:
            if not outcome_unknown(exc):
                raise translate(exc, "completing the multipart upload", writing=True) from exc
            response = await self._settle_complete(exc)
        self._upload_id = None  # completed: nothing to abort
        return await self._verified(response, ours, "complete_multipart_upload", self.stored_size)

    async def _verified(self, response: dict[str, Any], ours: str | None, operation: str, size: int) -> Stored:
        """The object S3 answered ``operation`` with, once its checksum is ``ours`` (or S3 gives none).

        An object whose checksum differs is removed: its version, where the bucket keeps versions.
        """
        checksum: dict[str, str] = {}
        if self._algorithm and ours is not None:
            theirs = response.get(field(self._algorithm))
            if theirs is None and operation == "complete_multipart_upload" and self._store_checksums:
                theirs = await self._stored_checksum(response)
            if theirs is not None and not same(theirs, ours):
                self._on_mismatch(operation)
                await asyncio.shield(self._remove(version_of(response), theirs, ours))
            checksum[self._algorithm] = ours  # S3's, when it said: they are the same
        return Stored(response["ETag"], version_of(response), size, checksum)

    async def _stored_checksum(self, response: dict[str, Any]) -> str | None:
        """The checksum of the object S3 answered with, asked of it; ``None`` when it cannot be had.

        For stores (moto) that check no part but compute the object's checksum without returning it.
        """
        assert self._algorithm is not None
        try:
            head = await self._store.head(self.bucket, self.key, version_id=version_of(response), checksums=True)
        except UploadError as exc:
            log.warning("could not ask S3 the checksum of %s/%s: %s", self.bucket, self.key, exc.message)
            return None
        return head.checksums.get(self._algorithm) if head.etag == response["ETag"] else None

    async def _remove(self, version_id: str | None, theirs: str, ours: str) -> None:
        """Delete the object (the version) S3 stored with checksum ``theirs``; raise the mismatch either way."""
        try:
            await self._store.delete(self.bucket, self.key, version_id)
        except UploadError as exc:
            log.error("%s/%s has the wrong checksum and could not be deleted: %s", self.bucket, self.key, exc.message)
            raise StoredChecksumMismatch("the object", theirs, ours, removed=False) from exc
        raise StoredChecksumMismatch("the object", theirs, ours)

    async def _settle_complete(self, exc: Exception) -> dict[str, Any]:
        """After a complete S3 did not answer: what S3 made of it, as a complete's answer, or the error.

        An abort that finds the upload proves it was not completed. One that no
        longer finds it means the complete (or someone's abort) went through:
        the object at the key is this upload when its ETag is the one S3
        derives from these parts.
        """
        assert self._upload_id is not None
        doing = "completing the multipart upload"
        try:
            await self._store.abort_multipart_upload(self.bucket, self.key, self._upload_id)
        except Exception as abort_error:
            if code_and_status(abort_error)[0] != "NoSuchUpload":
                raise maybe_stored(exc, doing) from exc
        else:
            raise translate(exc, doing, writing=True) from exc
        etags = [str(part["ETag"]).strip('"') for part in self._parts]
        if not all(re.fullmatch(r"[0-9a-f]{32}", etag) for etag in etags):
            raise maybe_stored(exc, doing) from exc
        expected = md5_etag(b"".join(bytes.fromhex(etag) for etag in etags), len(etags))
        return await self._head_if(expected, exc, doing)

    async def _head_if(self, etag: str, exc: Exception, doing: str) -> dict[str, Any]:
        """S3's answer for the object when its ETag is ``etag`` (this upload's), with its checksum if S3 keeps
        one; else raise for ``exc``."""
        try:
            head = await self._store.head(self.bucket, self.key, checksums=True)
        except NotFound:
            raise translate(exc, doing, writing=True) from exc
        except Exception:
            raise maybe_stored(exc, doing) from exc
        if head.etag != etag:
            raise maybe_stored(exc, doing) from exc
        log.warning("S3 did not answer %s of %s/%s, but stored it", doing, self.bucket, self.key)
        return {"ETag": head.etag, "VersionId": head.version_id} | {
            field(name): value for name, value in head.checksums.items()
        }

    async def _put(self, body: Pieces, tags: Mapping[str, str]) -> Stored:
        size = size_of(body)
        checksums = await self._checksums(body)
        attributes = self._attributes | checksums
        if self._if_none_match:
            attributes["IfNoneMatch"] = "*"
        if tags:
            attributes["Tagging"] = urllib.parse.urlencode(tags, quote_via=urllib.parse.quote)
        try:
            response = await self._store.put_object(self.bucket, self.key, body, attributes)
        except Exception as exc:
            if not outcome_unknown(exc):
                raise translate(exc, "storing the object", writing=True) from exc
            if "ContentMD5" in checksums:
                md5 = base64.b64decode(checksums["ContentMD5"])
            else:
                md5 = await off_loop(md5_of, body, size)
            response = await self._head_if(md5_etag(md5), exc, "storing the object")
        ours = checksums[field(self._algorithm)] if self._algorithm else None
        return dataclasses.replace(await self._verified(response, ours, "put_object", size), tagged=bool(tags))

    async def pause(self) -> tuple[Paused, bytearray]:
        """Send every full part and wait for S3 to take them all: the writer's progress, and the bytes too few to be
        a part yet (the tail), which the caller keeps until :meth:`resume`. The writer is done with after this."""
        self._raise_failure()
        while self._pending_size and self._pending_size >= (size := self._next_part_size()):
            await self._send_part(size)
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._raise_failure()
        tail = bytearray().join(self._take(self._pending_size))
        paused = Paused(self._upload_id, [dict(part) for part in self._parts], list(self._sizes), self._store_checksums)
        self._upload_id = None  # it goes on elsewhere: aborting this writer leaves it be
        return paused, tail

    def resume(self, paused: Paused, tail: bytes) -> None:
        """Go on with what :meth:`pause` gave, on a new writer of the same object: the next part is the one after
        ``paused.parts``, and ``tail`` comes before the bytes written next."""
        self._upload_id = paused.upload_id
        self._parts = [dict(part) for part in paused.parts]
        self._sizes = list(paused.sizes)
        self._store_checksums = paused.store_checksums
        self.stored_size = sum(self._sizes)
        if tail:
            self._pending.append(tail)
            self._pending_size = len(tail)
            self.stored_size += len(tail)

    async def abort(self) -> None:
        """Forget the buffered bytes, stop the parts on their way, and abort the multipart upload."""
        self._pending.clear()
        self._pending_size = 0
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._upload_id is None and self._creating is not None:
            # Cancelled while S3 was creating the multipart upload: it may exist all the same.
            with contextlib.suppress(Exception):  # when it failed, there is nothing to abort
                self._upload_id = await self._creating
        if self._upload_id is not None:
            await self._store.abort(self.bucket, self.key, self._upload_id)
            self._upload_id = None
