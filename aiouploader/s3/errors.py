"""S3's failures as the client-facing errors of :mod:`aiouploader.errors`."""

from __future__ import annotations

import asyncio

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from ..errors import NotFound, PreconditionFailed, UploadError, UpstreamError, UpstreamTimeout

CHANGED = "The object was replaced or deleted while it was being read; try again."


def code_and_status(exc: BaseException) -> tuple[str, int | None]:
    """S3's error code (``""`` when none) and HTTP status in an answer S3 refused; ``("", None)`` for no answer."""
    if not isinstance(exc, ClientError):
        return "", None
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return str(exc.response.get("Error", {}).get("Code") or ""), status if isinstance(status, int) else None


def translate(exc: BaseException, doing: str, *, writing: bool = False) -> UploadError:
    """The client-facing error for an S3 failure while ``doing`` something (``writing``: part of an upload)."""
    if isinstance(exc, UploadError):
        return exc
    if isinstance(exc, ReadTimeoutError | ConnectTimeoutError | asyncio.TimeoutError):
        return UpstreamTimeout(
            f"S3 did not answer in time while {doing}" + ("; nothing was stored." if writing else ".")
        )
    if isinstance(exc, ClientError):
        code, status = code_and_status(exc)
        if code in ("NoSuchKey", "404", "NotFound"):
            return NotFound("No object at this key.")
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed("An object already exists at this key.")
        return UpstreamError(f"S3 refused {doing}: {code or status}.")
    if isinstance(exc, EndpointConnectionError):
        return UpstreamError(f"S3 could not be reached while {doing}.")
    if isinstance(exc, BotoCoreError | OSError):
        return UpstreamError(f"S3 failed while {doing}: {str(exc).rstrip('.')}.")
    return UpstreamError(f"S3 failed while {doing}.")


def outcome_unknown(exc: BaseException) -> bool:
    """Whether S3 may have done the request although it failed: no answer came, or a retry found it done."""
    if isinstance(exc, ClientError):
        return code_and_status(exc)[0] == "NoSuchUpload"
    return not isinstance(exc, UploadError)


def maybe_stored(exc: BaseException, doing: str) -> UploadError:
    """The error for a write S3 may have made: its usual one, without the claim that nothing was stored."""
    error = translate(exc, doing)
    return type(error)(
        f"S3 did not confirm {doing}, and the object now at the key cannot be told apart from another: "
        "this upload may have been stored."
    )
