"""The S3 side: one client per process, an object writer (PutObject or multipart), reads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import datetime
import hashlib
import logging
import math
import re
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import crc32c
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from botocore.handlers import add_expect_header

from .config import MAX_PART_SIZE, S3Config
from .errors import NotFound, ObjectChanged, PreconditionFailed, UploadError, UpstreamError, UpstreamTimeout

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
PARTS_PER_SIZE_STEP = 900
KEPT_HEADERS = {
    "Content-Encoding": "ContentEncoding",
    "Content-Disposition": "ContentDisposition",
    "Content-Language": "ContentLanguage",
    "Cache-Control": "CacheControl",
}
"""Headers of an upload that S3 stores with the object and a download gets back, by botocore parameter."""
CHANGED = "The object was replaced or deleted while it was being read; try again."
ABORT_ATTEMPTS = 4
ABORT_RETRY_FIRST = 1.0
ABORT_RETRY_MAX = 60.0
"""Seconds between background retries of an abort S3 did not answer: doubling from the first to the most."""
READ_CHUNK = 256 * 1024


def part_size_for(number: int, base: int, content_length: int | None) -> int:
    """The size of part ``number`` (1-based), so that any object fits in 10,000 parts.

    A known length picks one size up front. An unknown one starts at ``base``
    and doubles every 900 parts, up to S3's 5GiB: even 5MiB parts reach S3's
    5TiB object limit by part 10,000.
    """
    if content_length is not None:
        needed = math.ceil(content_length / MAX_PARTS)
        return min(MAX_PART_SIZE, max(base, math.ceil(needed / 2**20) * 2**20))
    return min(MAX_PART_SIZE, base << ((number - 1) // PARTS_PER_SIZE_STEP))


def translate(exc: BaseException, doing: str, *, writing: bool = False) -> UploadError:
    """The client-facing error for an S3 failure while ``doing`` something (``writing``: part of an upload)."""
    if isinstance(exc, UploadError):
        return exc
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(
            f"S3 did not answer in time while {doing}" + ("; nothing was stored." if writing else ".")
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound("No object at this key.")
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed("An object already exists at this key.")
        return UpstreamError(f"S3 refused {doing}: {code or status}.")
    if isinstance(exc, EndpointConnectionError):
        return UpstreamError(f"S3 could not be reached while {doing}.")
    if isinstance(exc, BotoCoreError | OSError):
        return UpstreamError(f"S3 failed while {doing}: {str(exc).rstrip('.')}.")
    return UpstreamError(f"S3 failed while {doing}.")


def _outcome_unknown(exc: BaseException) -> bool:
    """Whether S3 may have done the request although it failed: no answer came, or a retry found it done."""
    if isinstance(exc, ClientError):
        return bool(exc.response.get("Error", {}).get("Code") == "NoSuchUpload")
    return not isinstance(exc, UploadError)


def _maybe_stored(exc: BaseException, doing: str) -> UploadError:
    """The error for a write S3 may have made: its usual one, without the claim that nothing was stored."""
    error = translate(exc, doing)
    return type(error)(
        f"S3 did not confirm {doing}, and the object now at the key cannot be told apart from another: "
        "this upload may have been stored."
    )


def _md5_etag(digest: bytes, parts: int | None = None) -> str:
    """The ETag S3 gives an object it stored unencrypted: the MD5 of the body, or of the parts' MD5s and their count."""
    return f'"{digest.hex()}"' if parts is None else f'"{hashlib.md5(digest).hexdigest()}-{parts}"'


def _version(response: Mapping[str, Any]) -> str | None:
    """The object's version id; ``None`` when the bucket is not versioned (some servers say "null")."""
    version = response.get("VersionId")
    return None if version in (None, "null") else str(version)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _crc32c(data: bytes | bytearray) -> bytes:
    return crc32c.crc32c(data).to_bytes(4, "big")


def _crc32(data: bytes | bytearray) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _sha256(data: bytes | bytearray) -> bytes:
    return hashlib.sha256(data).digest()


_ALGORITHMS = {"crc32c": ("CRC32C", _crc32c), "crc32": ("CRC32", _crc32), "sha256": ("SHA256", _sha256)}


class Body:
    """A request body that aiohttp sends in slices of one buffer, copying nothing.

    Given ``bytes``, botocore wraps them in a BytesIO that aiohttp copies; a
    whole buffer written at once is copied again into the socket transport
    for the part the kernel does not take. Slices keep that copy small.
    botocore needs ``read`` to accept the object, ``len`` for Content-Length
    and ``seek`` to rewind before a retry: each retry iterates afresh.
    """

    SLICE = 256 * 1024

    def __init__(self, buffer: bytearray) -> None:
        self._buffer = buffer
        self.sending = False
        """A pass over the slices is under way (a retry starts another)."""
        self.progress = time.monotonic()
        """When the last slice was asked for: the one before it was taken."""

    def __len__(self) -> int:
        return len(self._buffer)

    def read(self, size: int = -1) -> bytes:
        return bytes(self._buffer)

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def tell(self) -> int:
        return 0

    async def __aiter__(self) -> AsyncIterator[memoryview]:
        view = memoryview(self._buffer)
        self.sending = True
        for start in range(0, len(view), self.SLICE):
            self.progress = time.monotonic()
            yield view[start : start + self.SLICE]
        self.sending = False


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str
    content_type: str
    metadata: Mapping[str, str]
    version_id: str | None
    last_modified: datetime.datetime | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The :data:`KEPT_HEADERS` S3 stored with the object."""


@dataclass(frozen=True)
class Stored:
    etag: str
    version_id: str | None
    stored_size: int
    checksum: dict[str, str]


class S3:
    """Everything the server asks of S3, over one aiobotocore client."""

    def __init__(self, client: Any, config: S3Config) -> None:
        self.client = client
        self.config = config
        # botocore sends bodies with "Expect: 100-continue", and aiohttp waits for the
        # "100 Continue" with no timeout at all: an S3 that stalls after the request's
        # head would hold the upload (and its multipart upload) forever. Sent at once,
        # the body is followed by the response's read timeout.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        self._algorithm = _ALGORITHMS.get(config.checksum_algorithm)
        self.aborting: set[asyncio.Task[None]] = set()
        """Aborts retried in the background until S3 answers."""
        self.in_progress: set[str] = set()
        """Ids of the multipart uploads this process is writing (the orphan sweep leaves them)."""

    def checksum_args(self, body: bytes | bytearray) -> dict[str, str]:
        """Content-MD5 and the additional checksum of ``body``; CPU-bound, call off the loop."""
        args = {}
        if self.config.content_md5:
            args["ContentMD5"] = _b64(hashlib.md5(body).digest())
        if self._algorithm:
            name, func = self._algorithm
            args[f"Checksum{name}"] = _b64(func(body))
            args["ChecksumAlgorithm"] = name
        return args

    async def _checksum_args(self, body: bytes | bytearray) -> dict[str, str]:
        if len(body) < 256 * 1024:
            return self.checksum_args(body)
        return await asyncio.to_thread(self.checksum_args, body)

    def writer(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str,
        metadata: Mapping[str, str],
        headers: Mapping[str, str] | None = None,
        content_length: int | None = None,
        if_none_match: bool = False,
    ) -> ObjectWriter:
        """A writer of the object at ``key``; ``headers`` may hold any of :data:`KEPT_HEADERS`."""
        attributes = {"ContentType": content_type, "Metadata": dict(metadata)}
        attributes |= {KEPT_HEADERS[name]: value for name, value in (headers or {}).items()}
        return ObjectWriter(self, bucket, key, attributes, content_length, if_none_match)

    async def head_bucket(self, bucket: str) -> None:
        """Raise an :class:`UploadError` saying why ``bucket`` cannot be used, if it cannot."""
        try:
            await self.client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404:
                raise UpstreamError("S3 has no such bucket.") from exc
            if status == 403:
                raise UpstreamError("S3 refuses these credentials access to the bucket.") from exc
            raise translate(exc, "checking the bucket") from exc
        except Exception as exc:
            raise translate(exc, "checking the bucket") from exc

    async def head(self, bucket: str, key: str) -> ObjectInfo:
        try:
            head = await self.client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise translate(exc, "reading the object's headers") from exc
        return ObjectInfo(
            size=head["ContentLength"],
            etag=head["ETag"],
            content_type=head.get("ContentType", "application/octet-stream"),
            metadata=head.get("Metadata", {}),
            version_id=_version(head),
            last_modified=head.get("LastModified"),
            headers={name: head[param] for name, param in KEPT_HEADERS.items() if head.get(param)},
        )

    async def read(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` of the object whose ETag is ``etag``.

        Raises :class:`ObjectChanged` when another object has replaced it: some
        stores ignore ``If-Match``, so the answer's ETag is compared too.
        """
        if start >= end:
            return
        try:
            try:
                response = await self.client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=etag
                )
            except ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (404, 412, 416):
                    raise ObjectChanged(CHANGED) from exc
                raise
            body = response["Body"]
            if response.get("ETag", etag) != etag:
                body.close()
                raise ObjectChanged(CHANGED)
            try:
                async for chunk in body.iter_chunks(READ_CHUNK):
                    yield chunk
            finally:
                body.close()
        except (TimeoutError, ClientError, BotoCoreError, OSError) as exc:
            raise translate(exc, "reading the object") from exc

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Delete the object at ``key``; given ``version_id``, only that version (an older one shows again)."""
        try:
            await self.client.delete_object(Bucket=bucket, Key=key, **({"VersionId": version_id} if version_id else {}))
        except Exception as exc:
            raise translate(exc, "deleting the object") from exc

    async def abort(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort a multipart upload until S3 no longer knows it (late parts can revive it); whether S3 confirmed it.

        When S3 does not answer, the caller goes on and the abort is retried in
        the background until S3 confirms it.
        """
        for attempt in range(ABORT_ATTEMPTS):
            done = await self._abort_once(bucket, key, upload_id)
            if done:
                return True
            if done is None:
                log.warning(
                    "multipart upload %s of %s/%s is not aborted yet: retrying in the background",
                    upload_id,
                    bucket,
                    key,
                )
                task = asyncio.create_task(self._abort_later(bucket, key, upload_id))
                self.aborting.add(task)
                task.add_done_callback(self.aborting.discard)
                return False
            await asyncio.sleep(0.2 * 2**attempt)
        log.error("multipart upload %s of %s/%s may be left behind", upload_id, bucket, key)
        return False

    async def _abort_once(self, bucket: str, key: str, upload_id: str) -> bool | None:
        """Abort, then check: ``True`` when S3 no longer knows the upload, ``None`` when S3 did not answer."""
        try:
            await self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                log.warning("abort of upload %s failed: %s", upload_id, exc)
        except Exception as exc:
            log.warning("abort of upload %s failed: %s", upload_id, exc)
            return None
        try:
            await self.client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            return exc.response.get("Error", {}).get("Code") in ("NoSuchUpload", "404")
        except Exception as exc:
            log.warning("could not confirm the abort of upload %s: %s", upload_id, exc)
            return None
        return False

    async def _abort_later(self, bucket: str, key: str, upload_id: str) -> None:
        """Retry the abort while S3 does not answer; an answer ends it either way."""
        delay = ABORT_RETRY_FIRST
        try:
            while (done := await self._abort_once(bucket, key, upload_id)) is None:
                await asyncio.sleep(delay)
                delay = min(2 * delay, ABORT_RETRY_MAX)
        except asyncio.CancelledError:
            log.error(
                "multipart upload %s of %s/%s may be left behind: the server stopped before S3 confirmed its abort "
                "(the orphan sweep removes it once older than s3.orphan_ttl)",
                upload_id,
                bucket,
                key,
            )
            raise
        if done:
            log.info("multipart upload %s of %s/%s aborted", upload_id, bucket, key)
        else:
            log.error("multipart upload %s of %s/%s may be left behind", upload_id, bucket, key)

    async def close(self) -> None:
        """Stop the background aborts (each logs the upload it leaves)."""
        for task in list(self.aborting):
            task.cancel()
        if self.aborting:
            await asyncio.wait(set(self.aborting))


class ObjectWriter:
    """Writes one object: a single PutObject when it fits one part, multipart otherwise.

    :meth:`write` returns only once its bytes are buffered within the bound
    ``part size x (parts in flight + 1)``, so the caller reads the client at
    the pace S3 takes the parts.
    """

    def __init__(
        self,
        s3: S3,
        bucket: str,
        key: str,
        attributes: dict[str, Any],
        content_length: int | None,
        if_none_match: bool,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.key = key
        self._attributes = attributes
        """What S3 stores with the object: ``ContentType``, ``Metadata``, ``ContentEncoding``..."""
        self._content_length = content_length
        self._if_none_match = if_none_match
        self._pending: deque[bytes | memoryview] = deque()
        self._pending_size = 0
        self._upload_id: str | None = None
        self._creating: asyncio.Future[Any] | None = None
        self._parts: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(s3.config.parts_in_flight)
        self._failure: BaseException | None = None
        self._spare: list[bytearray] = []
        self.stored_size = 0

    def _next_part_size(self) -> int:
        return part_size_for(len(self._parts) + 1, self._s3.config.part_size, self._content_length)

    async def write(self, data: bytes) -> None:
        if not data:
            return
        self._raise_failure()
        self._pending.append(data)
        self._pending_size += len(data)
        self.stored_size += len(data)
        while self._pending_size > (size := self._next_part_size()):
            await self._send_part(size)

    def _take(self, size: int) -> bytearray:
        """The next ``size`` pending bytes, copied once into the part's buffer.

        A bytearray, because botocore would wrap ``bytes`` in a BytesIO that
        aiohttp copies again before sending. Buffers of parts S3 took are
        reused: allocating and freeing part-sized buffers makes the allocator
        keep far more memory than is live.
        """
        part = self._spare.pop() if self._spare and len(self._spare[-1]) == size else bytearray(size)
        view = memoryview(part)
        filled = 0
        while filled < size:
            chunk = self._pending.popleft()
            if len(chunk) > size - filled:
                rest = memoryview(chunk)
                self._pending.appendleft(rest[size - filled :])
                chunk = rest[: size - filled]
            view[filled : filled + len(chunk)] = chunk
            filled += len(chunk)
        self._pending_size -= size
        return part

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
        task = asyncio.create_task(self._upload_part(part, body))
        self._tasks.add(task)
        task.add_done_callback(self._part_done)

    def _part_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if not task.cancelled() and task.exception() is not None and self._failure is None:
            self._failure = task.exception()

    async def _create(self) -> None:
        args: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self.key,
            **self._attributes,
        }
        if self._s3._algorithm:
            args["ChecksumAlgorithm"] = self._s3._algorithm[0]
        # Shielded: cancelled while S3 creates the upload, abort() still learns its id and aborts it.
        self._creating = asyncio.ensure_future(self._s3.client.create_multipart_upload(**args))
        try:
            response = await asyncio.shield(self._creating)
        except Exception as exc:
            raise translate(exc, "starting the multipart upload", writing=True) from exc
        self._upload_id = response["UploadId"]
        self._s3.in_progress.add(response["UploadId"])

    async def _watched(self, call: Awaitable[Any], body: Body) -> Any:
        """``call``, failed with a timeout once S3 takes none of ``body`` for ``read_timeout`` seconds.

        aiohttp bounds the wait for the response but not the sending of the
        body: an S3 that stops reading it would hold the upload forever.
        """
        task = asyncio.ensure_future(call)
        limit = self._s3.config.read_timeout
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=limit / 4)
                if done:
                    return task.result()
                if body.sending and time.monotonic() - body.progress > limit:
                    raise TimeoutError
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # seen: when the caller was cancelled it has no use for this outcome

    async def _upload_part(self, part: dict[str, Any], body: bytearray) -> None:
        checksums = await self._s3._checksum_args(body)
        watched = Body(body)
        try:
            response = await self._watched(
                self._s3.client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    PartNumber=part["PartNumber"],
                    Body=watched,
                    **checksums,
                ),
                watched,
            )
        except Exception as exc:
            raise translate(exc, f"uploading part {part['PartNumber']}", writing=True) from exc
        for name, value in checksums.items():
            if name.startswith("Checksum") and name != "ChecksumAlgorithm":
                part[name] = response.get(name, value)
        part["ETag"] = response["ETag"]
        self._spare.append(body)

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
        self._spare.clear()
        self._raise_failure()

    async def complete(self) -> Stored:
        """Send what is left and make the object visible; raises if anything failed."""
        if self._upload_id is None:
            return await self._put(self._take(self._pending_size))
        await self._send_rest()
        parts = self._parts
        args: dict[str, Any] = {}
        if self._if_none_match:
            args["IfNoneMatch"] = "*"
        try:
            response = await self._s3.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": parts},
                **args,
            )
        except Exception as exc:
            if not _outcome_unknown(exc):
                raise translate(exc, "completing the multipart upload", writing=True) from exc
            response = await self._settle_complete(exc)
        self._s3.in_progress.discard(self._upload_id)
        checksum = {}
        if self._s3._algorithm:
            name = self._s3._algorithm[0]
            composite = b"".join(base64.b64decode(p[f"Checksum{name}"]) for p in parts)
            ours = f"{_b64(self._s3._algorithm[1](composite))}-{len(parts)}"
            checksum[name.lower()] = response.get(f"Checksum{name}") or ours
        return Stored(response["ETag"], _version(response), self.stored_size, checksum)

    async def _settle_complete(self, exc: Exception) -> dict[str, Any]:
        """After a complete S3 did not answer: what S3 made of it, as a complete's answer, or the error.

        An abort that finds the upload proves it was not completed. One that no
        longer finds it means the complete (or someone's abort) went through:
        the object at the key is this upload when its ETag is the one S3
        derives from these parts.
        """
        doing = "completing the multipart upload"
        try:
            await self._s3.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        except ClientError as abort_error:
            if abort_error.response.get("Error", {}).get("Code") != "NoSuchUpload":
                raise _maybe_stored(exc, doing) from exc
        except Exception:
            raise _maybe_stored(exc, doing) from exc
        else:
            raise translate(exc, doing, writing=True) from exc
        etags = [str(part["ETag"]).strip('"') for part in self._parts]
        if not all(re.fullmatch(r"[0-9a-f]{32}", etag) for etag in etags):
            raise _maybe_stored(exc, doing) from exc
        expected = _md5_etag(b"".join(bytes.fromhex(etag) for etag in etags), len(etags))
        return await self._head_if(expected, exc, doing)

    async def _head_if(self, etag: str, exc: Exception, doing: str) -> dict[str, Any]:
        """The object's headers when its ETag is ``etag`` (this upload's); else raise for ``exc``."""
        try:
            head = await self._s3.client.head_object(Bucket=self.bucket, Key=self.key)
        except ClientError as head_error:
            if head_error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                raise translate(exc, doing, writing=True) from exc
            raise _maybe_stored(exc, doing) from exc
        except Exception:
            raise _maybe_stored(exc, doing) from exc
        if head.get("ETag") != etag:
            raise _maybe_stored(exc, doing) from exc
        log.warning("S3 did not answer %s of %s/%s, but stored it", doing, self.bucket, self.key)
        return dict(head)

    async def _put(self, body: bytearray) -> Stored:
        checksums = await self._s3._checksum_args(body)
        args: dict[str, Any] = {}
        if self._if_none_match:
            args["IfNoneMatch"] = "*"
        watched = Body(body)
        try:
            response = await self._watched(
                self._s3.client.put_object(
                    Bucket=self.bucket,
                    Key=self.key,
                    Body=watched if body else b"",
                    **self._attributes,
                    **checksums,
                    **args,
                ),
                watched,
            )
        except Exception as exc:
            if not (_outcome_unknown(exc) and "ContentMD5" in checksums):
                raise translate(exc, "storing the object", writing=True) from exc
            response = await self._head_if(
                _md5_etag(base64.b64decode(checksums["ContentMD5"])), exc, "storing the object"
            )
        checksum = {
            name.removeprefix("Checksum").lower(): response.get(name, value)
            for name, value in checksums.items()
            if name.startswith("Checksum") and name != "ChecksumAlgorithm"
        }
        return Stored(response["ETag"], _version(response), len(body), checksum)

    async def abort(self) -> None:
        """Forget the buffered bytes, stop the parts on their way, and abort the multipart upload."""
        self._pending.clear()
        self._pending_size = 0
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._spare.clear()  # the error that ends the upload may keep this writer alive a while
        if self._upload_id is None and self._creating is not None:
            # Cancelled while S3 was creating the multipart upload: it may exist all the same.
            with contextlib.suppress(Exception):  # when it failed, there is nothing to abort
                self._upload_id = (await self._creating)["UploadId"]
        if self._upload_id is not None:
            await self._s3.abort(self.bucket, self.key, self._upload_id)
            self._s3.in_progress.discard(self._upload_id)
            self._upload_id = None
