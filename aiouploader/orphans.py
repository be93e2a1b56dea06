"""The orphan sweep: abort multipart uploads a killed process left under the routes' prefixes.

S3 offers no mark on an upload in progress that ListMultipartUploads would
show (metadata is invisible until the object exists, upload ids are S3's, and
``Initiator`` is the credential, not the program). So an upload counts as
an orphan when it lies under a route's bucket and prefix, was initiated more
than ``s3.orphan_ttl`` seconds ago, and is not one this process is writing.
Anything else writing multipart uploads under those prefixes is swept by the
same rule: give such writers a prefix of their own, or set the TTL above the
longest upload they make. The multipart uploads of resumable uploads kept in
a bucket (``kept``) are left to their own expiry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

from .s3 import S3, MultipartUpload

log = logging.getLogger(__name__)


async def stale_uploads(s3: S3, bucket: str, prefix: str, ttl: float) -> list[MultipartUpload]:
    """Multipart uploads under ``bucket``/``prefix`` initiated more than ``ttl`` seconds ago, not this process's."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl)
    uploads = await s3.list_multipart_uploads(bucket, prefix)
    return [upload for upload in uploads if upload.initiated < cutoff and upload.upload_id not in s3.in_progress]


Kept = Callable[[str], Awaitable[set[str]]]
"""The ids of the multipart uploads that resumable uploads kept in a bucket are writing."""


async def sweep(s3: S3, targets: Iterable[tuple[str, str]], ttl: float, kept: Kept | None = None) -> int:
    """Abort the stale uploads under every ``(bucket, prefix)``; return how many S3 confirmed aborted."""
    aborted = 0
    for bucket, prefix in sorted(set(targets)):
        try:
            uploads = await stale_uploads(s3, bucket, prefix, ttl)
            if kept is not None and uploads:
                resumable = await kept(bucket)
                uploads = [upload for upload in uploads if upload.upload_id not in resumable]
        except Exception as exc:
            log.warning("orphan sweep of %s/%s failed: %s", bucket, prefix, exc)
            continue
        for upload in uploads:
            log.warning(
                "aborting the orphaned multipart upload %s of %s/%s (initiated %s)",
                upload.upload_id, bucket, upload.key, upload.initiated.isoformat(),
            )  # fmt: skip
            aborted += await s3.abort(bucket, upload.key, upload.upload_id)
    return aborted


async def keep_sweeping(
    s3: S3,
    targets: list[tuple[str, str]],
    ttl: float,
    interval: float,
    swept: Callable[[int], None],
    kept: Kept | None = None,
) -> None:
    """Sweep now and every ``interval`` seconds until cancelled."""
    while True:
        swept(await sweep(s3, targets, ttl, kept))
        await asyncio.sleep(interval)
