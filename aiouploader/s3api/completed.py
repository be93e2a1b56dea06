"""The answers of the multipart uploads this process completed lately, for a CompleteMultipartUpload sent again.

A client whose answer to CompleteMultipartUpload was lost sends the request again; S3 answers it with 200 and
the same result. Once an upload is completed its session is gone, so its answer is kept here: for `KEPT_FOR`
seconds, at most `KEPT` of them (the oldest go first), a few hundred bytes each. The same upload id, bucket,
key and parts list get that answer again; another parts list is ``NoSuchUpload``, as is every other operation
on a completed upload id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from ..routes import Route
from .checksums import Checksum
from .errors import BadDigest, NoSuchUpload
from .responses import xml_response

KEPT = 1000
KEPT_FOR = 900.0

Listed = list[tuple[int, str, dict[str, str]]]
"""``(part number, ETag, {algorithm: checksum})`` of each part a CompleteMultipartUpload lists."""


def fingerprint(listed: Listed) -> bytes:
    """What tells one parts list from another, quotes and spaces aside."""
    canonical = [
        (number, etag.strip().strip('"').lower(), sorted((a, v.strip()) for a, v in checksums.items()))
        for number, etag, checksums in listed
    ]
    return hashlib.sha256(repr(canonical).encode()).digest()


@dataclass(frozen=True)
class Answer:
    """A completed upload's CompleteMultipartUpload answer, and what a request must match to get it again."""

    route: Route
    key: str
    listed: bytes
    """The `fingerprint` of its parts list."""
    whole: tuple[str, str] | None
    """A full-object checksum's header and value, which a retry that sends that header must match."""
    children: str
    headers: Mapping[str, str]
    at: float

    def again(self, listed: Listed, headers: Mapping[str, str]) -> web.Response:
        if fingerprint(listed) != self.listed:
            raise NoSuchUpload(
                "The multipart upload was completed with another parts list; it is no longer in progress."
            )
        if self.whole is not None and (claimed := headers.get(self.whole[0])) is not None:
            algorithm = self.whole[0].removeprefix("x-amz-checksum-")
            if claimed.strip() != self.whole[1]:
                raise BadDigest(f"The {algorithm.upper()} of the whole object is not the one sent.")
        return xml_response("CompleteMultipartUploadResult", self.children, self.headers)


class Completed:
    """The answers of uploads completed in the last `KEPT_FOR` seconds, by upload id, at most `KEPT`."""

    def __init__(self, kept: int = KEPT, kept_for: float = KEPT_FOR) -> None:
        self.kept = kept
        self.kept_for = kept_for
        self._answers: OrderedDict[str, Answer] = OrderedDict()

    def remember(
        self,
        upload_id: str,
        route: Route,
        key: str,
        listed: Listed,
        whole: Checksum | None,
        children: str,
        headers: Mapping[str, str],
    ) -> None:
        claimed = None if whole is None else (whole.header, whole.b64digest())
        now = asyncio.get_running_loop().time()
        self._answers[upload_id] = Answer(route, key, fingerprint(listed), claimed, children, dict(headers), now)
        self._forget(now)

    def recall(self, upload_id: str, route: Route, key: str) -> Answer:
        """The answer of ``upload_id``, completed at that bucket and key; ``NoSuchUpload`` when there is none."""
        self._forget(asyncio.get_running_loop().time())
        answer = self._answers.get(upload_id)
        if answer is None or answer.route is not route or answer.key != key:
            raise NoSuchUpload()
        return answer

    def __len__(self) -> int:
        return len(self._answers)

    def _forget(self, now: float) -> None:
        while self._answers:
            oldest = next(iter(self._answers.values()))
            if len(self._answers) <= self.kept and now - oldest.at < self.kept_for:
                return
            self._answers.popitem(last=False)
