"""One upload, end to end: body → plugin chain → S3, with the failure invariant."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .chain import Chain
from .errors import BadRequest, PayloadTooLarge, RequestTimeout, UploadError
from .hookspecs import Upload
from .keys import check_key
from .s3 import KEPT_HEADERS, S3, ObjectWriter

log = logging.getLogger(__name__)

Read = Callable[[], Awaitable[bytes]]
"""Returns the next piece of the body, ``b""`` at its end."""


async def blocks(
    read: Read, block_size: int, idle_timeout: float, total_timeout: float = math.inf
) -> AsyncIterator[bytes]:
    """The body in blocks of at least ``block_size`` bytes (the last may be shorter).

    Raises :class:`RequestTimeout` when the client sends nothing for
    ``idle_timeout`` seconds, or has not sent it all after ``total_timeout``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + total_timeout
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(min(idle_timeout, deadline - loop.time())):
                chunk = await read()
        except TimeoutError:
            if loop.time() >= deadline:
                raise RequestTimeout(
                    f"The client did not send the whole body within {total_timeout:g} seconds; the upload was aborted."
                ) from None
            raise RequestTimeout(
                f"The client sent no body bytes for {idle_timeout:g} seconds; the upload was aborted."
            ) from None
        except (ConnectionError, ValueError, OSError, EOFError) as exc:
            raise BadRequest(f"The request body could not be read to its end ({exc}).") from exc
        except Exception as exc:
            if type(exc).__module__.startswith("aiohttp"):
                raise BadRequest(f"The request body could not be read to its end ({exc}).") from exc
            raise
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size >= block_size:
            yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks, size = [], 0
    if chunks:
        yield b"".join(chunks)


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


def _failure(chain: Chain, upload: Upload, exc: BaseException) -> UploadError | None:
    """Tell the plugins why ``upload`` failed; the error to answer with, ``None`` when it was cancelled."""
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
        chain.failed(upload, UploadError("The upload was cancelled."))
        return None
    if isinstance(exc, UploadError):
        error = exc
    else:
        log.exception("upload %s failed", upload.request_id, exc_info=exc)
        error = UploadError("The upload failed inside the server; nothing was stored.")
    chain.failed(upload, error)
    return error


@dataclass
class Staged:
    """An upload whose bytes S3 holds but does not show at its key until :meth:`commit`."""

    chain: Chain
    upload: Upload
    writer: ObjectWriter

    async def commit(self) -> dict[str, Any]:
        """Make the object visible; the upload result. On failure nothing is at the key."""
        try:
            stored = await self.writer.complete()
        except BaseException as exc:
            await _cleanup(self.writer.abort())
            if (error := _failure(self.chain, self.upload, exc)) is None:
                raise
            raise error from exc
        upload = self.upload
        result: dict[str, Any] = {
            "bucket": upload.bucket,
            "key": upload.s3_key,
            "size": upload.size,
            "stored_size": stored.stored_size,
            "etag": stored.etag,
            "version_id": stored.version_id,
            "content_type": upload.content_type,
            "checksums": upload.checksums,
            "stored_checksums": stored.checksum,
            "plugins": upload.reports,
        }
        self.chain.completed(upload, result)
        return result

    async def discard(self, error: UploadError) -> None:
        """Forget the upload: S3 drops its bytes, the plugins hear ``error``."""
        await _cleanup(self.writer.abort())
        self.chain.failed(self.upload, error)


async def stage(
    s3: S3,
    chain: Chain,
    upload: Upload,
    read: Read,
    *,
    block_size: int,
    idle_timeout: float,
    total_timeout: float = math.inf,
    started: bool = False,
    if_none_match: bool = False,
    max_size: int | None = None,
    send_all: bool = False,
) -> Staged:
    """Stream the body through ``chain`` into S3, all but the step that makes it visible.

    On any failure the S3 upload is aborted before the error propagates, so
    no multipart upload is left. ``started`` says the ``upload_started``
    hooks already ran (for ``Expect: 100-continue``). With ``send_all`` every
    byte is in S3 on return, none held in memory until the commit.
    """
    try:
        if not started:
            chain.started(upload)
        check_key(upload.key, upload.prefix)
        pipeline = chain.pipeline(upload)
    except UploadError as exc:
        chain.failed(upload, exc)
        raise
    writer = s3.writer(
        upload.bucket,
        upload.s3_key,
        content_type=upload.content_type,
        metadata=upload.metadata,
        headers=kept_headers(upload),
        content_length=upload.content_length,
        if_none_match=if_none_match,
    )
    try:
        async for block in blocks(read, block_size, idle_timeout, total_timeout):
            upload.size += len(block)
            if max_size is not None and upload.size > max_size:
                raise PayloadTooLarge(f"The upload is larger than the {max_size} bytes its credentials allow.")
            await writer.write(await pipeline.feed(block))
        await writer.write(await pipeline.finish())
        if send_all:
            await writer.send_all()
    except BaseException as exc:
        await _cleanup(writer.abort())
        if (error := _failure(chain, upload, exc)) is None:
            raise
        raise error from exc
    finally:
        await _cleanup(pipeline.close())
    return Staged(chain, upload, writer)
