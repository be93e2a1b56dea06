"""The orphan sweep: abort multipart uploads a killed process left under the routes' prefixes.

S3 offers no mark on an upload in progress that ListMultipartUploads would
show (metadata is invisible until the object exists, upload ids are S3's, and
``Initiator`` is the credential, not the program). So an upload counts as
an orphan when it lies under a route's bucket and prefix, was initiated more
than ``s3.orphan_ttl`` seconds ago, and is not one this process is writing.
Anything else writing multipart uploads under those prefixes is swept by the
same rule: give such writers a prefix of their own, or set the TTL above the
longest upload they make.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from .s3 import S3

log = logging.getLogger(__name__)


async def stale_uploads(s3: S3, bucket: str, prefix: str, ttl: float) -> list[dict[str, Any]]:
    """Multipart uploads under ``bucket``/``prefix`` initiated more than ``ttl`` seconds ago."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl)
    found: list[dict[str, Any]] = []
    markers: dict[str, str] = {}
    while True:
        try:
            page = await s3.client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, **markers)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                return found
            raise
        for upload in page.get("Uploads", []):
            if upload["Initiated"] < cutoff and upload["UploadId"] not in s3.in_progress:
                found.append(upload)
        if not page.get("IsTruncated"):
            return found
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


async def sweep(s3: S3, targets: Iterable[tuple[str, str]], ttl: float) -> int:
    """Abort the stale uploads under every ``(bucket, prefix)``; return how many S3 confirmed aborted."""
    aborted = 0
    for bucket, prefix in sorted(set(targets)):
        try:
            uploads = await stale_uploads(s3, bucket, prefix, ttl)
        except Exception as exc:
            log.warning("orphan sweep of %s/%s failed: %s", bucket, prefix, exc)
            continue
        for upload in uploads:
            log.warning(
                "aborting the orphaned multipart upload %s of %s/%s (initiated %s)",
                upload["UploadId"], bucket, upload["Key"], upload["Initiated"].isoformat(),
            )  # fmt: skip
            aborted += await s3.abort(bucket, upload["Key"], upload["UploadId"])
    return aborted


async def keep_sweeping(
    s3: S3, targets: list[tuple[str, str]], ttl: float, interval: float, swept: Callable[[int], None]
) -> None:
    """Sweep now and every ``interval`` seconds until cancelled."""
    while True:
        swept(await sweep(s3, targets, ttl))
        await asyncio.sleep(interval)
