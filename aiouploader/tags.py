"""Object tags: what plugins record with an object once its body has passed, written before the client's 2xx.

S3 takes an object's metadata when the upload starts (CreateMultipartUpload
or PutObject); a digest or a verdict is known only after the last byte. Tags
can be set on an object that exists (PutObjectTagging) without copying it,
so the session writes ``upload.tags`` once S3 has completed a multipart object,
and removes the object when that fails; a single PutObject, sent after the
stages finished, carries them itself. Not every store keeps tags: whether a
bucket does is learnt once per process (:func:`support`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import PluginError, UploadError, UpstreamError, UpstreamFault
from .s3.errors import code_and_status, translate

if TYPE_CHECKING:
    from .hookspecs import Upload
    from .s3 import ObjectStore

log = logging.getLogger(__name__)

MAX_TAGS = 10
MAX_KEY = 128
MAX_VALUE = 256
PUNCTUATION = "+-=._:/@"
"""Besides letters, digits and spaces, the characters S3 takes in a tag's key and value."""
PROBE_PREFIX = ".aiouploader-tag-probe-"


def problem(tags: object) -> str | None:
    """What S3 would refuse in ``tags`` (S3's limits: at most 10, keys of 1-128 and values of 0-256 characters,
    letters, digits, spaces and ``+-=._:/@``, no key starting ``aws:``); ``None`` when they are fine."""
    if not isinstance(tags, dict):
        return f"upload.tags must be a dict of str, not {type(tags).__name__}"
    if len(tags) > MAX_TAGS:
        return f"an object takes at most {MAX_TAGS} tags, and it has {len(tags)}"
    for key, value in tags.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return f"the tag {key!r} is not a pair of str"
        if not 1 <= len(key) <= MAX_KEY:
            return f"the tag key {key[:40]!r} has {len(key)} characters (1 to {MAX_KEY})"
        if len(value) > MAX_VALUE:
            return f"the tag {key!r} has a value of {len(value)} characters (at most {MAX_VALUE})"
        if key.lower().startswith("aws:"):
            return f"the tag key {key!r} starts with aws:, which S3 keeps for itself"
        for text in (key, value):
            if bad := sorted({c for c in text if not (c.isalnum() or c == " " or c in PUNCTUATION)}):
                return f"the tag {key!r} holds {''.join(bad)!r}; tags take letters, digits, spaces and {PUNCTUATION}"
    return None


class TagWatch:
    """An upload's tags, checked after each plugin's call: who set which, and an invalid one is that plugin's error."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload
        self._seen: dict[str, str] = {}
        self.origins: dict[str, str] = {}
        """The plugin that last set each tag, by the tag's key."""

    def check(self, name: str) -> None:
        tags = self._upload.tags
        if tags == self._seen:
            return
        if (wrong := problem(tags)) is not None:
            raise PluginError(name, f"The plugin {name!r} recorded tags S3 would refuse: {wrong}; nothing was stored.")
        self.origins = {
            key: self.origins.get(key, name) if self._seen.get(key) == value else name for key, value in tags.items()
        }
        self._seen = dict(tags)


async def support(s3: ObjectStore, bucket: str, prefix: str) -> str | None:
    """``None`` when ``bucket`` keeps object tags, else why not; learnt once per bucket and process.

    Asks S3 to tag an object that does not exist: S3 answers ``NoSuchKey``, having
    looked the object up as it would to tag it. A store that stores the request as
    an object instead (``rclone serve s3`` does: its PutObjectTagging replaces the
    object's bytes with the tagging XML) has that object removed at once. Uploads
    that ask while the probe runs wait for the same probe, which goes on to its end
    when they are cancelled, so that its object is removed all the same.
    """
    if bucket in s3.tag_support:
        return s3.tag_support[bucket]
    probes = _probes.setdefault(s3, {})
    if (probe := probes.get(bucket)) is None:
        probe = probes[bucket] = asyncio.ensure_future(_probe(s3, bucket, prefix))
        probe.add_done_callback(lambda _: probes.pop(bucket, None))
    return await asyncio.shield(probe)


_probes: weakref.WeakKeyDictionary[ObjectStore, dict[str, asyncio.Future[str | None]]] = weakref.WeakKeyDictionary()
"""The probes under way, by store and bucket."""


async def _probe(s3: ObjectStore, bucket: str, prefix: str) -> str | None:
    key = f"{prefix}{PROBE_PREFIX}{uuid.uuid4().hex}"
    try:
        await s3.put_tags(bucket, key, {"probe": "1"})
    except Exception as exc:
        code, status = code_and_status(exc)
        if status is None or status >= 500 or status in (408, 429):
            raise translate(exc, "checking whether the bucket keeps object tags") from exc
        reason = None if code in ("NoSuchKey", "404") else f"S3 refuses PutObjectTagging ({code or status})"
    else:
        reason = "the store took PutObjectTagging for a PutObject (rclone serve s3 does)"
        try:
            await s3.delete(bucket, key)
        except UploadError as exc:
            log.error("the object %s/%s, made by asking to tag it, is left: %s", bucket, key, exc.message)
    if reason is not None:
        log.warning(
            "bucket %s keeps no object tags: %s; its objects get no Repr-Digest, and an upload whose plugins "
            "record tags fails",
            bucket,
            reason,
        )
    s3.tag_support[bucket] = reason
    return reason


async def record(s3: ObjectStore, bucket: str, key: str, tags: Mapping[str, str], version_id: str | None) -> None:
    """Write ``tags`` to the object S3 just completed (that version, when the bucket keeps versions)."""
    try:
        await s3.put_tags(bucket, key, tags, version_id)
    except Exception as exc:
        error = translate(exc, "recording the object's tags")
        kind = type(error) if isinstance(error, UpstreamFault) else UpstreamError
        raise kind(f"{error.message.rstrip('.')}; the object was not kept.") from exc


async def read(s3: ObjectStore, bucket: str, key: str, version_id: str | None) -> dict[str, str]:
    """The object's tags; none when S3 does not give them (a GET is answered all the same)."""
    try:
        return await s3.get_tags(bucket, key, version_id)
    except UploadError as exc:
        log.warning("the tags of %s/%s could not be read: %s", bucket, key, exc.message)
        return {}
