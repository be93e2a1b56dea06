"""A resumable upload as plain data: what any replica needs to answer for it and to take it up.

It is kept in the route's bucket, under the server's reserved prefix
(:data:`aiouploader.keys.RESERVED`, which no client key reaches), as one
small object per upload, written at the end of each request once its bytes
are in S3 (:mod:`aiouploader.tus.states` reads and writes it)::

    .aiouploader/uploads/<id>               this document, sealed with server.state_key for <id>
    .aiouploader/uploads/<id>.tail-<offset>-<token>  the writer's bytes under S3's 5 MiB minimum at that offset,
                                             written by the request the token names

The document holds the route, the key the credentials must cover, the
:class:`~aiouploader.hookspecs.Upload` (the creation's headers but its
credentials, metadata, size so far...),
its length and expiry, the writer's :class:`~aiouploader.s3.Paused`
progress (the multipart upload id, the parts S3 took with their ETags and
checksums), the stages' sealed state (:meth:`~aiouploader.chain.Pipeline.save`),
and a lease: the request that sends the upload's bytes now, and until when
its replica holds it. An upload whose stages cannot move (a clamd scan) is
``held``: it goes on only on the replica that holds it live.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ..chain_state import StateKey
from ..errors import CannotResume
from ..hookspecs import Upload, UploadResult
from ..keys import RESERVED
from ..s3 import Paused

PREFIX = RESERVED + "uploads/"
FORMAT = 1
UNKEPT_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Request headers not kept with an upload's state: credentials are checked on each request, never stored."""


def state_key(upload_id: str) -> str:
    return PREFIX + upload_id


def tail_key(upload_id: str, offset: int, token: str) -> str:
    return f"{PREFIX}{upload_id}.tail-{offset}-{token}"


@dataclass
class StoredUpload:
    id: str
    route: str
    scope: str
    """The key the upload was created for: what later credentials must cover."""
    length: int | None
    ttl: int
    expires: float
    upload: Upload
    max_size: int | None = None
    """The credentials' bound on the upload's size, from its creation."""
    if_none_match: bool = False
    chain: bytes | None = None
    """The stages' sealed state; ``None`` before the first byte."""
    writer: Paused | None = None
    tail: int = 0
    """Bytes in the tail object (:attr:`tail_key`)."""
    tail_token: str = ""
    """Names the tail of the request that wrote it: two requests that raced cannot take each other's."""
    held: bool = False
    """Its stages cannot move: it goes on only on the replica that holds it live."""
    result: UploadResult | None = None
    lease: str | None = None
    """The request sending the upload's bytes now, until ``lease_until``."""
    lease_until: float = 0.0

    @property
    def offset(self) -> int:
        return self.upload.size

    @property
    def tail_key(self) -> str | None:
        return tail_key(self.id, self.offset, self.tail_token) if self.tail else None

    def busy(self, now: float | None = None) -> bool:
        return self.lease is not None and self.lease_until > (time.time() if now is None else now)


def _bound_to(upload_id: str) -> bytes:
    return json.dumps(["resumable upload", upload_id]).encode()


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def seal(stored: StoredUpload, key: StateKey) -> bytes:
    upload = stored.upload
    document = {
        "format": FORMAT,
        **{f.name: getattr(stored, f.name) for f in dataclasses.fields(stored) if f.name not in ("upload", "chain")},
        "chain": _b64(stored.chain),
        "writer": None if stored.writer is None else dataclasses.asdict(stored.writer),
        "upload": {
            **{f.name: getattr(upload, f.name) for f in dataclasses.fields(upload) if f.name != "headers"},
            "headers": [(name, value) for name, value in upload.headers.items() if name.lower() not in UNKEPT_HEADERS],
        },
    }
    return key.seal(json.dumps(document, separators=(",", ":")).encode(), _bound_to(stored.id))


def unseal(blob: bytes, key: StateKey, upload_id: str) -> StoredUpload:
    """The upload :func:`seal` sealed for ``upload_id``; :class:`CannotResume` for anything else."""
    document: Any = json.loads(key.open(blob, _bound_to(upload_id)))
    try:
        if document.pop("format") != FORMAT:
            raise CannotResume("its state was saved in a format this server does not read")
        sent = document.pop("upload")
        headers = CIMultiDictProxy(CIMultiDict([(str(name), str(value)) for name, value in sent.pop("headers")]))
        document["upload"] = Upload(**sent, headers=headers)
        document["chain"] = None if document["chain"] is None else base64.b64decode(document["chain"])
        document["writer"] = None if document["writer"] is None else Paused(**document["writer"])
        stored = StoredUpload(**document)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise CannotResume("its saved state is not in a format this server reads") from None
    if stored.id != upload_id:
        raise CannotResume("its saved state is another upload's")
    return stored
