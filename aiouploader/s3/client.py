"""The S3 facade: everything the server asks of S3, over one aiobotocore client that nothing else touches."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.handlers import add_expect_header

from ..errors import ObjectChanged, UpstreamError
from .endpoints import resolve_per_bucket
from .errors import CHANGED, code_and_status, translate
from .sending import UNWATCHED, Body, Pieces, watched_call
from .store import KEPT_HEADERS, ObjectInfo, version_of
from .user_agent import build_once
from .writer import ObjectWriter

if TYPE_CHECKING:
    from ..config import S3Config

log = logging.getLogger(__name__)

ABORT_ATTEMPTS = 4
ABORT_RETRY_FIRST = 1.0
ABORT_RETRY_MAX = 60.0
"""Seconds between background retries of an abort S3 did not answer: doubling from the first to the most."""
READ_CHUNK = 256 * 1024


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload in progress, as S3 lists it."""

    key: str
    upload_id: str
    initiated: datetime.datetime


class S3:
    """Everything the server asks of S3, over one aiobotocore client: an :class:`~.store.ObjectStore`."""

    def __init__(
        self, client: Any, config: S3Config, *, on_checksum_mismatch: Callable[[str], object] = lambda op: None
    ) -> None:
        self._client = client
        self.config = config
        self.on_checksum_mismatch = on_checksum_mismatch
        """Told the operation (``upload_part``, ``put_object``...) whose stored checksum was not the one sent."""
        # botocore sends bodies with "Expect: 100-continue", and aiohttp waits for the
        # "100 Continue" with no timeout at all: an S3 that stalls after the request's
        # head would hold the upload (and its multipart upload) forever. Sent at once,
        # the body is followed by the response's read timeout.
        client.meta.events.unregister("before-call.s3", add_expect_header)
        if not resolve_per_bucket(client):
            log.info("the S3 client resolves the endpoint of every request afresh")
        # botocore builds each request's User-Agent, then builds it again once the request
        # is signed, only to list the SDK features it used: once is enough.
        user_agent = getattr(client, "_user_agent_creator", None)
        if user_agent is not None:
            client.meta.events.unregister("request-created.s3", user_agent.rebuild_and_replace_user_agent_handler)
        build_once(client)
        self.aborting: set[asyncio.Task[None]] = set()
        """Aborts retried in the background until S3 answers."""
        self.in_progress: set[str] = set()
        """Ids of the multipart uploads this process is writing (the orphan sweep leaves them)."""
        self.tag_support: dict[str, str | None] = {}
        """By bucket: ``None`` when it keeps object tags, else why not (see :func:`aiouploader.tags.support`)."""

    # Objects

    async def head_bucket(self, bucket: str) -> None:
        """Raise an :class:`UploadError` saying why ``bucket`` cannot be used, if it cannot."""
        try:
            await self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            status = code_and_status(exc)[1]
            if status == 404:
                raise UpstreamError("S3 has no such bucket.") from exc
            if status == 403:
                raise UpstreamError("S3 refuses these credentials access to the bucket.") from exc
            raise translate(exc, "checking the bucket") from exc
        except Exception as exc:
            raise translate(exc, "checking the bucket") from exc

    async def head(
        self, bucket: str, key: str, *, version_id: str | None = None, checksums: bool = False
    ) -> ObjectInfo:
        asked = ({"VersionId": version_id} if version_id else {}) | ({"ChecksumMode": "ENABLED"} if checksums else {})
        try:
            head = await self._client.head_object(Bucket=bucket, Key=key, **asked)
        except Exception as exc:
            raise translate(exc, "reading the object's headers") from exc
        return ObjectInfo(
            size=head["ContentLength"],
            etag=head["ETag"],
            content_type=head.get("ContentType", "application/octet-stream"),
            metadata=head.get("Metadata", {}),
            version_id=version_of(head),
            last_modified=head.get("LastModified"),
            headers={name: head[param] for name, param in KEPT_HEADERS.items() if head.get(param)},
            checksums={
                name.removeprefix("Checksum").lower(): value
                for name, value in head.items()
                if name.startswith("Checksum") and name != "ChecksumType"
            },
            tag_count=head.get("TagCount", 0),
        )

    async def get_tags(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        try:
            version = {"VersionId": version_id} if version_id else {}
            answer = await self._client.get_object_tagging(Bucket=bucket, Key=key, **version)
        except Exception as exc:
            raise translate(exc, "reading the object's tags") from exc
        return {tag["Key"]: tag["Value"] for tag in answer.get("TagSet", [])}

    async def read(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Yield bytes ``[start, end)`` of the object whose ETag is ``etag``.

        Raises :class:`ObjectChanged` when another object has replaced it: some
        stores ignore ``If-Match``, so the answer's ETag is compared too.
        """
        if start >= end:
            return
        try:
            try:
                response = await self._client.get_object(
                    Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}", IfMatch=etag
                )
            except ClientError as exc:
                if code_and_status(exc)[1] in (404, 412, 416):
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

    async def get_whole(self, bucket: str, key: str) -> tuple[bytes, str]:
        """A small object's bytes and ETag, read at once; :class:`~aiouploader.errors.NotFound` when there is none."""
        try:
            response = await self._client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                return await body.read(), str(response["ETag"])
            finally:
                body.close()
        except Exception as exc:
            raise translate(exc, "reading the object") from exc

    async def list_objects(self, bucket: str, prefix: str, **params: Any) -> dict[str, Any]:
        """One page of ListObjectsV2 under ``prefix``, keys decoded; ``params`` as botocore names them
        (``Delimiter``, ``MaxKeys``, ``ContinuationToken``, ``StartAfter``)."""
        try:
            page: dict[str, Any] = await self._client.list_objects_v2(Bucket=bucket, Prefix=prefix, **params)
        except Exception as exc:
            raise translate(exc, "listing the bucket") from exc
        return page

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Delete the object at ``key``; given ``version_id``, only that version (an older one shows again)."""
        try:
            version = {"VersionId": version_id} if version_id else {}
            await self._client.delete_object(Bucket=bucket, Key=key, **version)
        except Exception as exc:
            raise translate(exc, "deleting the object") from exc

    async def presign_put(
        self,
        bucket: str,
        key: str,
        *,
        expires_in: int,
        content_length: int | None = None,
        content_type: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """A presigned PutObject URL: S3 holds its bearer to ``content_length``, ``content_type``, an absent key."""
        params: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if content_length is not None:
            params["ContentLength"] = content_length
        if content_type is not None:
            params["ContentType"] = content_type
        if if_none_match:
            params["IfNoneMatch"] = "*"
        url: str = await self._client.generate_presigned_url(
            ClientMethod="put_object", Params=params, ExpiresIn=expires_in
        )
        return url

    # Writes

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
        """A writer of the object at ``key``; ``headers`` may hold any of :data:`KEPT_HEADERS`.

        Its checksum comparisons that fail are told to :attr:`on_checksum_mismatch`.
        """
        return ObjectWriter(
            self,
            self.config,
            bucket,
            key,
            content_type=content_type,
            metadata=metadata,
            headers=headers,
            content_length=content_length,
            if_none_match=if_none_match,
            on_mismatch=self.on_checksum_mismatch,
        )

    async def put_object(self, bucket: str, key: str, body: Pieces, attributes: Mapping[str, Any]) -> dict[str, Any]:
        watched = Body(body)
        call = self._client.put_object(Bucket=bucket, Key=key, Body=watched if len(watched) else b"", **attributes)
        answer: dict[str, Any] = await (
            call if len(watched) <= UNWATCHED else watched_call(call, watched, self.config.read_timeout)
        )
        return answer

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str], version_id: str | None = None) -> None:
        version = {"VersionId": version_id} if version_id else {}
        tag_set = [{"Key": name, "Value": value} for name, value in tags.items()]
        await self._client.put_object_tagging(Bucket=bucket, Key=key, Tagging={"TagSet": tag_set}, **version)

    async def create_multipart_upload(self, bucket: str, key: str, attributes: Mapping[str, Any]) -> str:
        answer = await self._client.create_multipart_upload(Bucket=bucket, Key=key, **attributes)
        upload_id: str = answer["UploadId"]
        self.in_progress.add(upload_id)
        return upload_id

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Pieces, checksums: Mapping[str, str]
    ) -> dict[str, Any]:
        watched = Body(body)
        call = self._client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=watched, **checksums
        )
        answer: dict[str, Any] = await watched_call(call, watched, self.config.read_timeout)
        return answer

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: Sequence[Mapping[str, Any]],
        *,
        if_none_match: bool,
        checksums: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Complete the upload; this process is done with it either way (a failure is followed by an abort)."""
        try:
            answer: dict[str, Any] = await self._client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": list(parts)},
                **({"IfNoneMatch": "*"} if if_none_match else {}),
                **(checksums or {}),
            )
        finally:
            self.in_progress.discard(upload_id)
        return answer

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)

    # Aborts, and the orphan sweep's listing

    async def abort(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort a multipart upload until S3 no longer knows it (late parts can revive it); whether S3 confirmed it.

        When S3 does not answer, the caller goes on and the abort is retried in
        the background until S3 confirms it.
        """
        try:
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
        finally:
            self.in_progress.discard(upload_id)

    async def _abort_once(self, bucket: str, key: str, upload_id: str) -> bool | None:
        """Abort, then check: ``True`` when S3 no longer knows the upload, ``None`` when S3 did not answer."""
        try:
            await self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if code_and_status(exc)[0] != "NoSuchUpload":
                log.warning("abort of upload %s failed: %s", upload_id, exc)
        except Exception as exc:
            log.warning("abort of upload %s failed: %s", upload_id, exc)
            return None
        try:
            await self._client.list_parts(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            return code_and_status(exc)[0] in ("NoSuchUpload", "404")
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

    async def list_multipart_uploads(self, bucket: str, prefix: str) -> list[MultipartUpload]:
        """Every multipart upload in progress under ``bucket``/``prefix`` (a store's NoSuchUpload reads as none).

        Raises what S3 raised otherwise.
        """
        found: list[MultipartUpload] = []
        markers: dict[str, str] = {}
        while True:
            try:
                page = await self._client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, **markers)
            except ClientError as exc:
                if code_and_status(exc)[0] == "NoSuchUpload":
                    return found
                raise
            found += [MultipartUpload(u["Key"], u["UploadId"], u["Initiated"]) for u in page.get("Uploads", [])]
            if not page.get("IsTruncated"):
                return found
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

    async def close(self) -> None:
        """Stop the background aborts (each logs the upload it leaves)."""
        for task in list(self.aborting):
            task.cancel()
        if self.aborting:
            await asyncio.wait(set(self.aborting))
