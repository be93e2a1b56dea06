"""What makes a usable object key, and keys for uploads that do not name one."""

from __future__ import annotations

import re
import unicodedata
import uuid
from urllib.parse import unquote

from .errors import InvalidKey

MAX_KEY_BYTES = 1024
RESERVED = ".aiouploader/"
"""Where the server keeps its own objects in a bucket (resumable uploads' state): no client key reaches it."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SEGMENTS = re.compile(r"[/\\]")
_UNSAFE_NAME = re.compile(r"[^\w.\-]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_QUOTED_FILENAME = re.compile(r';\s*filename\s*=\s*"([^"]*)"', re.IGNORECASE)
MAX_NAME_BYTES = 200
"""Of a file name kept in a key: within any store's limit for one path segment (255 bytes on most file systems)."""


def key_from_path(raw: str, prefix: str) -> str:
    """Decode the percent-encoded key part of a request path and check it.

    Refuses malformed percent escapes, an empty key, empty, ``.`` or ``..``
    segments (``\\`` counting as a separator for the dot segments), control characters
    (NUL included), invalid UTF-8, and keys whose full S3 key (with the route
    prefix) passes S3's limit of 1,024 bytes.
    """
    if _BAD_ESCAPE.search(raw):
        raise InvalidKey("The key has a '%' that is not followed by two hex digits; encode it as %25.")
    try:
        key = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidKey("The key is not valid UTF-8 once percent-decoded.") from None
    check_key(key, prefix)
    return key


def check_key(key: str, prefix: str) -> None:
    if not key:
        raise InvalidKey("The key is empty: name the object after the route, e.g. /uploads/report.pdf.")
    if _CONTROL.search(key):
        raise InvalidKey("The key contains a control character (NUL, newline, ...).")
    if "" in key.split("/") or any(segment in (".", "..") for segment in _SEGMENTS.split(key)):
        raise InvalidKey("The key has an empty, '.' or '..' segment; use plain names separated by single '/'.")
    if (prefix + key).startswith(RESERVED):
        raise InvalidKey(f"Keys starting with {RESERVED} are the server's own; choose another name.")
    if len((prefix + key).encode()) > MAX_KEY_BYTES:
        raise InvalidKey(f"The key is too long: S3 keys are at most {MAX_KEY_BYTES} bytes with the route prefix.")


def generated_key() -> str:
    return uuid.uuid4().hex


def form_filename(disposition: str, parsed: str | None) -> str | None:
    """The file name as a form part's Content-Disposition sent it.

    Browsers send a quoted name with its backslashes as they are (a Windows
    path); a parser that reads them as escapes (``parsed``) loses the path's
    separators. ``filename*`` (RFC 6266), when sent, wins: ``parsed`` has it.
    """
    quoted = _QUOTED_FILENAME.search(disposition)
    return parsed if quoted is None or "filename*" in disposition.lower() else quoted.group(1)


def sanitize_filename(filename: str) -> str:
    """A safe last path segment for a sent file name: no directories, no tricks.

    Percent escapes are decoded first: browsers encode ``"``, CR and LF so,
    and some clients (aiohttp's) the whole name.
    """
    name = unicodedata.normalize("NFC", unquote(filename)).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("_", _CONTROL.sub("", name)).strip("._")
    return name.encode()[:MAX_NAME_BYTES].decode(errors="ignore")


def key_for_file(filename: str | None, mode: str) -> str:
    """The key of a multipart/form-data file field: ``<uuid>/<name>``, or ``<name>`` alone."""
    name = sanitize_filename(filename or "")
    if mode == "filename" and name:
        return name
    return f"{generated_key()}/{name}" if name else generated_key()
