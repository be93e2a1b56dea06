"""The object store the server writes to and reads from: an interface, and the values it speaks in.

:class:`~aiouploader.s3.client.S3` implements it over S3. The writer, the
upload session and the handlers need nothing else of a store, so they can be
tested over one held in memory.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .sending import Pieces
    from .writer import ObjectWriter

KEPT_HEADERS = {
    "Content-Encoding": "ContentEncoding",
    "Content-Disposition": "ContentDisposition",
    "Content-Language": "ContentLanguage",
    "Cache-Control": "CacheControl",
}
"""Headers of an upload that S3 stores with the object and a download gets back, by botocore parameter."""


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
    checksums: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """S3's checksums of the object (base64) by algorithm, when asked for and S3 keeps them."""
    tag_count: int = 0
    """How many tags the object has, as HeadObject says (``x-amz-tagging-count``; a store may not say)."""


@dataclass(frozen=True)
class Stored:
    """An object the writer stored: S3's ETag and version, its size in S3, its checksums (base64) by algorithm,
    and whether the tags it was given are on it already (a single PutObject carries them)."""

    etag: str
    version_id: str | None
    stored_size: int
    checksum: dict[str, str]
    tagged: bool = False


def version_of(answer: Mapping[str, Any]) -> str | None:
    """The object's version id in S3's answer; ``None`` when the bucket is not versioned (some servers say "null")."""
    version = answer.get("VersionId")
    return None if version in (None, "null") else str(version)


class ObjectStore(Protocol):
    """What the server asks of an object store; an :class:`~.writer.ObjectWriter` writes over any.

    Keys, parameters and answers are S3's, named as botocore names them
    (``ContentType``, ``ETag``, ``ChecksumCRC32C``...). The writes
    (:meth:`put_object` and the multipart calls) raise what the store raised,
    for the writer to judge: ``botocore.exceptions.ClientError`` when it
    refused, with its code and status (:func:`~aiouploader.s3.errors.code_and_status`);
    any other exception when no answer came, so the write may or may not
    have been made. Every other method raises an
    :class:`~aiouploader.errors.UploadError` the client can be given.
    """

    tag_support: dict[str, str | None]
    """By bucket: ``None`` when it keeps object tags, else why not, as :func:`aiouploader.tags.support` learnt."""

    # Objects

    async def head_bucket(self, bucket: str) -> None:
        """Raise an error saying why ``bucket`` cannot be used, if it cannot."""

    async def head(
        self, bucket: str, key: str, *, version_id: str | None = None, checksums: bool = False
    ) -> ObjectInfo:
        """The object at ``key`` (that version of it); :class:`~aiouploader.errors.NotFound` when there is none.

        ``checksums``: with the object's checksums, where the store keeps them.
        """

    def read(self, bucket: str, key: str, etag: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` of the object whose ETag is ``etag``; ``ObjectChanged`` once another replaced it."""

    async def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Delete the object at ``key``; given ``version_id``, only that version."""

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
        """A URL that lets its bearer PUT the object at ``key`` for ``expires_in`` seconds, on these terms."""

    async def get_tags(self, bucket: str, key: str, version_id: str | None = None) -> dict[str, str]:
        """The tags of the object at ``key`` (of that version, given ``version_id``)."""

    # Writes: the writer of one object, and the calls it makes (see the class docstring for what they raise)

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
        """An :class:`~.writer.ObjectWriter` of the object at ``key`` over this store, with its part size and
        checksums; ``headers`` may hold any of :data:`KEPT_HEADERS`."""

    async def put_tags(self, bucket: str, key: str, tags: Mapping[str, str], version_id: str | None = None) -> None:
        """Replace the tags of the object at ``key`` (of that version, given ``version_id``): PutObjectTagging."""

    async def put_object(self, bucket: str, key: str, body: Pieces, attributes: Mapping[str, Any]) -> dict[str, Any]:
        """Store ``body`` at ``key`` with ``attributes`` (``ContentType``, ``Metadata``, checksums, ``IfNoneMatch``)."""

    async def create_multipart_upload(self, bucket: str, key: str, attributes: Mapping[str, Any]) -> str:
        """Start a multipart upload of the object at ``key``; its upload id."""

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Pieces, checksums: Mapping[str, str]
    ) -> dict[str, Any]:
        """Send part ``number`` (1 to 10,000) with its ``checksums``; the answer holds its ``ETag`` and checksums."""

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
        """Make the object of ``parts`` (``PartNumber``, ``ETag``, checksums; in order) visible at ``key``.

        ``checksums``: the whole object's (``ChecksumCRC64NVME``, ``ChecksumType``), for a full-object checksum.
        """

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Ask once to abort the multipart upload: ``NoSuchUpload`` when the store no longer knows it."""

    async def abort(self, bucket: str, key: str, upload_id: str) -> bool:
        """Abort the multipart upload until the store no longer knows it; whether it confirmed that.

        Never raises: what is not confirmed yet is retried in the background.
        """
