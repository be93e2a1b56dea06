"""An aiouploader plugin that refuses an upload whose first bytes are not of an allowed type.

The type comes from the content, never from the name or the ``Content-Type``
header: a program renamed ``photo.png`` is still a program. The stage holds
back the first few bytes (at most :data:`HEAD` of them), looks them up in a
small table of magic numbers, and then either passes them on with everything
after, or refuses the upload with 415 ``unsupported_media_type``.

```toml
[plugins.content_type_guard]
allow = ["image/png", "image/jpeg", "application/pdf"]
```

Content that matches no entry of the table is ``application/octet-stream``:
list it to let such uploads through.
"""

from __future__ import annotations

from typing import Any

from aiouploader import Upload, UploadStage, hookimpl
from aiouploader.config import Settings, parse_settings
from aiouploader.errors import UnsupportedMediaType
from pydantic import field_validator

__version__ = "0.1.0"
UNKNOWN = "application/octet-stream"

MAGIC: list[tuple[str, tuple[tuple[int, bytes], ...]]] = [
    ("image/png", ((0, b"\x89PNG\r\n\x1a\n"),)),
    ("image/jpeg", ((0, b"\xff\xd8\xff"),)),
    ("image/gif", ((0, b"GIF87a"),)),
    ("image/gif", ((0, b"GIF89a"),)),
    ("image/webp", ((0, b"RIFF"), (8, b"WEBP"))),
    ("application/pdf", ((0, b"%PDF-"),)),
    ("application/zip", ((0, b"PK\x03\x04"),)),
    ("application/zip", ((0, b"PK\x05\x06"),)),
    ("application/gzip", ((0, b"\x1f\x8b"),)),
    ("application/x-executable", ((0, b"\x7fELF"),)),
    ("application/x-msdownload", ((0, b"MZ"),)),
    ("application/x-mach-binary", ((0, b"\xcf\xfa\xed\xfe"),)),
    ("text/x-script", ((0, b"#!"),)),
]
"""``(type, ((offset, magic), ...))``: the content is ``type`` when every ``magic`` is at its ``offset``.
The first match wins."""

HEAD = max(offset + len(magic) for _, marks in MAGIC for offset, magic in marks)
"""The most bytes :func:`sniff` needs."""

KNOWN = sorted({kind for kind, _ in MAGIC} | {UNKNOWN})


def sniff(head: bytes) -> str:
    """The type of content that starts with ``head``, :data:`UNKNOWN` when no magic number matches."""
    for kind, marks in MAGIC:
        if all(head[offset : offset + len(magic)] == magic for offset, magic in marks):
            return kind
    return UNKNOWN


class GuardSettings(Settings):
    allow: list[str] = ["image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"]

    @field_validator("allow")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one type")
        unknown = [kind for kind in value if kind not in KNOWN]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} cannot be recognised; known types: {', '.join(KNOWN)}")
        return value


class GuardStage(UploadStage):
    def __init__(self, upload: Upload, settings: GuardSettings, name: str) -> None:
        self._upload = upload
        self._name = name
        self._allow = settings.allow
        self._head = bytearray()
        self._decided = False

    def _check(self, head: bytes) -> None:
        kind = sniff(head)
        if kind not in self._allow:
            raise UnsupportedMediaType(
                f"The upload's content is {kind}, which this route does not accept (allowed: {', '.join(self._allow)})."
            )
        self._upload.reports[self._name] = {"detected": kind}
        self._decided = True

    def _release(self) -> bytes:
        self._check(bytes(self._head[:HEAD]))
        held, self._head = bytes(self._head), bytearray()
        return held

    async def feed(self, block: bytes) -> bytes:
        if self._decided:
            return block
        if not self._head and len(block) >= HEAD:
            self._check(block[:HEAD])
            return block
        self._head += block
        return self._release() if len(self._head) >= HEAD else b""

    async def finish(self) -> bytes:
        """A body shorter than :data:`HEAD` is decided here, on all of its bytes."""
        return b"" if self._decided else self._release()


@hookimpl
def aiouploader_configure(settings: dict[str, Any]) -> GuardSettings:
    return parse_settings(GuardSettings, settings)


@hookimpl
def aiouploader_upload_stage(upload: Upload, settings: GuardSettings, name: str) -> UploadStage:
    return GuardStage(upload, settings, name)
