"""Resumable uploads' state in their buckets (:mod:`.stored`): read, written one request at a time, removed.

One request at a time, across replicas: a request that sends an upload's
bytes first writes a lease into its state, and writes the state again when
it ends; each write names the version it replaces. Where the store has
conditional writes (AWS S3, moto: ``If-Match`` with the ETag read,
``If-None-Match: *`` to create), the store refuses a write that lost a race,
and the request answers 423. Where it has none (``rclone serve s3``, learnt
once per bucket), the state is read again just before each write and after
a lease is written: two requests that start within that moment can both go
on, and the upload then fails at completion (S3 refuses parts whose ETags
are not the ones recorded) rather than store wrong bytes.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime

from ..chain_state import StateKey
from ..errors import CannotResume, NotFound, UploadBusy, UploadError
from ..s3 import S3, code_and_status, translate
from .stored import PREFIX, StoredUpload, seal, state_key, tail_key, unseal

log = logging.getLogger(__name__)

BUSY = "Another request is sending this upload's bytes."
_PROBE = "probe-"
OCTETS = "application/octet-stream"


class UploadStates:
    """The uploads' state in their buckets, through the server's S3 client, sealed with ``server.state_key``."""

    def __init__(self, s3: S3, key: StateKey, lease: float) -> None:
        self.s3 = s3
        self.key = key
        self.lease = lease
        """Seconds a request holds its upload before another replica may take it over: its deadline, and more."""
        self.conditional: dict[str, bool] = {}
        """By bucket: whether the store refuses a write whose ``If-Match``/``If-None-Match`` does not hold."""

    async def read(self, bucket: str, upload_id: str) -> tuple[StoredUpload, str]:
        """The upload and the ETag of its state; :class:`NotFound` when it has none."""
        blob, etag = await self.s3.get_whole(bucket, state_key(upload_id))
        return unseal(blob, self.key, upload_id), etag

    async def write(self, bucket: str, stored: StoredUpload, etag: str | None) -> str:
        """Store ``stored`` in place of the state whose ETag is ``etag`` (``None``: there is none yet); its new ETag.

        :raise UploadBusy: another request wrote the state since it was read.
        """
        conditional = await self._conditional(bucket)
        if not conditional:
            await self._check_unchanged(bucket, stored.id, etag)
        attributes = {"ContentType": OCTETS}
        if conditional:
            attributes |= {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            answer = await self.s3.put_object(bucket, state_key(stored.id), [seal(stored, self.key)], attributes)
        except Exception as exc:
            if code_and_status(exc)[1] in (409, 412):
                raise UploadBusy(BUSY) from exc
            raise translate(exc, "saving the upload's state") from exc
        return str(answer["ETag"])

    async def _check_unchanged(self, bucket: str, upload_id: str, etag: str | None) -> None:
        try:
            now = (await self.s3.get_whole(bucket, state_key(upload_id)))[1]
        except NotFound:
            now = None
        if now != etag:
            raise UploadBusy(BUSY)

    async def take(self, bucket: str, stored: StoredUpload, etag: str) -> tuple[str, str]:
        """Lease the upload to this request; the lease and the state's new ETag. :class:`UploadBusy` when another
        request holds it or took it first."""
        if stored.busy():
            raise UploadBusy(BUSY)
        lease = stored.lease = uuid.uuid4().hex
        stored.lease_until = time.time() + self.lease
        etag = await self.write(bucket, stored, etag)
        if not self.conditional[bucket]:
            again, etag = await self.read(bucket, stored.id)
            if again.lease != lease:
                raise UploadBusy(BUSY)
        return lease, etag

    async def put_tail(self, bucket: str, stored: StoredUpload, tail: bytearray) -> None:
        """Store ``tail`` as the upload's, under a token of its own, which ``stored`` names from then on."""
        token = uuid.uuid4().hex
        if tail:
            try:
                await self.s3.put_object(
                    bucket, tail_key(stored.id, stored.offset, token), [tail], {"ContentType": OCTETS}
                )
            except Exception as exc:
                raise translate(exc, "saving the upload's last bytes") from exc
        stored.tail, stored.tail_token = len(tail), token

    async def read_tail(self, bucket: str, stored: StoredUpload) -> bytes:
        """The bytes the upload's state names; :class:`CannotResume` when they are not there as it says."""
        if stored.tail_key is None:
            return b""
        try:
            tail = (await self.s3.get_whole(bucket, stored.tail_key))[0]
        except NotFound:
            raise CannotResume("its last bytes are no longer in the bucket") from None
        if len(tail) != stored.tail:
            raise CannotResume(f"its last bytes in the bucket are {len(tail)} bytes, not {stored.tail}")
        return tail

    async def drop_tail(self, bucket: str, key: str) -> None:
        """Remove a tail no state names any more; one left behind goes with its upload."""
        try:
            await self.s3.delete(bucket, key)
        except UploadError as exc:
            log.warning("the resumable upload's tail %s is left: %s", key, exc.message)

    async def remove(self, bucket: str, stored: StoredUpload) -> None:
        """Everything the upload has in S3: its multipart upload, its tails, its state."""
        if stored.writer is not None and stored.writer.upload_id is not None and stored.result is None:
            await self.s3.abort(bucket, stored.upload.s3_key, stored.writer.upload_id)
        for key in await self._keys(bucket, state_key(stored.id) + ".tail-"):
            await self.s3.delete(bucket, key)
        await self.s3.delete(bucket, state_key(stored.id))

    async def _keys(self, bucket: str, prefix: str) -> list[str]:
        keys: list[str] = []
        params: dict[str, str] = {}
        while True:
            page = await self.s3.list_objects(bucket, prefix, **params)
            keys += [item["Key"] for item in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return keys
            params = {"ContinuationToken": page["NextContinuationToken"]}

    async def ids(self, bucket: str, idle_for: float = 0.0) -> list[str]:
        """The ids of the uploads whose state is in ``bucket``, written more than ``idle_for`` seconds ago."""
        keys: list[str] = []
        params: dict[str, str] = {}
        cutoff = datetime.now(UTC).timestamp() - idle_for
        while True:
            page = await self.s3.list_objects(bucket, PREFIX, **params)
            keys += [
                item["Key"]
                for item in page.get("Contents", [])
                if "." not in item["Key"][len(PREFIX) :] and item["LastModified"].timestamp() <= cutoff
            ]
            if not page.get("IsTruncated"):
                return [key[len(PREFIX) :] for key in keys if not key[len(PREFIX) :].startswith(_PROBE)]
            params = {"ContinuationToken": page["NextContinuationToken"]}

    async def multipart_ids(self, bucket: str) -> set[str]:
        """The multipart uploads that the uploads kept in ``bucket`` write to (the orphan sweep leaves them)."""
        found = set()
        for upload_id in await self.ids(bucket):
            try:
                stored = (await self.read(bucket, upload_id))[0]
            except UploadError:
                continue
            if stored.writer is not None and stored.writer.upload_id is not None:
                found.add(stored.writer.upload_id)
        return found

    async def _conditional(self, bucket: str) -> bool:
        """Whether the store honours ``If-None-Match: *`` and ``If-Match`` on PutObject; learnt once per bucket."""
        if bucket in self.conditional:
            return self.conditional[bucket]
        key = f"{PREFIX}{_PROBE}{uuid.uuid4().hex}"
        body = [b"probe"]
        refused = 0
        try:
            await self.s3.put_object(bucket, key, body, {"IfNoneMatch": "*"})
            for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"' + "0" * 32 + '"'}):
                try:
                    await self.s3.put_object(bucket, key, body, condition)
                except Exception as exc:
                    if code_and_status(exc)[1] not in (409, 412):
                        raise
                    refused += 1
        except Exception as exc:
            raise translate(exc, "checking whether the bucket takes conditional writes") from exc
        finally:
            try:
                await self.s3.delete(bucket, key)
            except UploadError as exc:
                log.warning("the probe object %s/%s is left: %s", bucket, key, exc.message)
        self.conditional[bucket] = refused == 2
        if not self.conditional[bucket]:
            log.warning(
                "bucket %s takes no conditional writes: resumable uploads' requests are kept one at a time by "
                "reading their state before writing it (see docs/operations.md)",
                bucket,
            )
        return self.conditional[bucket]
