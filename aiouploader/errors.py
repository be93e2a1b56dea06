"""The errors a request can end with, each knowing its HTTP status and JSON ``code``.

Four tiers say whose failure it is; catch a tier to handle all of its errors::

    UploadError                 500 internal_error: a failure nobody foresaw
    ├── ClientFault             4xx: the request cannot succeed as it was sent
    │   ├── BadRequest          400 bad_request
    │   ├── InvalidKey          400 invalid_key
    │   ├── ChecksumMismatch    400 checksum_mismatch
    │   ├── Unauthorized        401 unauthorized
    │   ├── Forbidden           403 forbidden
    │   ├── NotFound            404 not_found
    │   ├── MethodNotAllowed    405 method_not_allowed
    │   ├── RequestTimeout      408 request_timeout
    │   ├── ObjectChanged       409 conflict
    │   ├── OffsetMismatch      409 offset_mismatch (resumable uploads)
    │   ├── UploadIncomplete    409 upload_incomplete (resumable uploads)
    │   ├── PreconditionFailed  412 precondition_failed
    │   ├── PayloadTooLarge     413 payload_too_large
    │   ├── UnsupportedMediaType 415 unsupported_media_type
    │   ├── RangeNotSatisfiable 416 range_not_satisfiable
    │   ├── CannotResume        410 cannot_resume: start the upload again
    │   ├── ExpectationFailed   417 expectation_failed
    │   ├── Infected            422 infected
    │   ├── UploadBusy          423 upload_busy (resumable uploads)
    │   └── PatchChecksumMismatch 460 checksum_mismatch (resumable uploads)
    ├── UpstreamFault           5xx: S3, or a service a plugin relies on, failed
    │   ├── UpstreamError       502 upstream_error
    │   ├── ScannerUnavailable  503 scanner_unavailable (Retry-After)
    │   └── UpstreamTimeout     504 upstream_timeout
    ├── PluginFault             500: a plugin broke
    │   └── PluginError         500 plugin_error
    └── ServerFault             503: this server cannot take the request now (Retry-After)
        ├── Overloaded          503 overloaded
        ├── Draining            503 draining
        └── NotReady            503 not_ready
"""

from __future__ import annotations


class UploadError(Exception):
    """A failure the client is told about: ``{"error": {"code": ..., "message": ...}}``."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def to_json(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class ClientFault(UploadError):
    """The request cannot succeed as it was sent: a 4xx."""

    status = 400
    code = "bad_request"


class UpstreamFault(UploadError):
    """S3, or a service a plugin relies on, failed or did not answer."""

    status = 502
    code = "upstream_error"


class PluginFault(UploadError):
    """A plugin broke: it raised something other than an :class:`UploadError`, or took too long."""

    status = 500
    code = "plugin_error"


class _RetryLater(UploadError):
    status = 503

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class ServerFault(_RetryLater):
    """This server cannot take the request now (overloaded, shutting down, not ready): retry later.

    Raise one of its subclasses: each has its own ``code``.
    """


class BadRequest(ClientFault):
    status = 400
    code = "bad_request"


class InvalidKey(ClientFault):
    status = 400
    code = "invalid_key"


class ChecksumMismatch(ClientFault):
    status = 400
    code = "checksum_mismatch"


class Unauthorized(ClientFault):
    status = 401
    code = "unauthorized"


class Forbidden(ClientFault):
    status = 403
    code = "forbidden"


class NotFound(ClientFault):
    status = 404
    code = "not_found"


class MethodNotAllowed(ClientFault):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(ClientFault):
    status = 408
    code = "request_timeout"


class PreconditionFailed(ClientFault):
    status = 412
    code = "precondition_failed"


class ObjectChanged(ClientFault):
    status = 409
    code = "conflict"


class CannotResume(ClientFault):
    """An upload's saved state cannot be taken up (here): the client must start the upload again.

    ``reason`` says why, for the log; the message tells the client what to do.
    """

    status = 410
    code = "cannot_resume"

    def __init__(self, reason: str, *, plugin: str | None = None) -> None:
        super().__init__(f"This upload cannot go on ({reason}); start it again.")
        self.reason = reason
        self.plugin = plugin


class OffsetMismatch(ClientFault):
    """A resumable upload's PATCH that does not start where the upload stands (``HEAD`` says where)."""

    status = 409
    code = "offset_mismatch"


class UploadIncomplete(ClientFault):
    status = 409
    code = "upload_incomplete"


class UploadBusy(ClientFault):
    """Another request is sending this resumable upload's bytes."""

    status = 423
    code = "upload_busy"


class UnsupportedMediaType(ClientFault):
    status = 415
    code = "unsupported_media_type"


class PatchChecksumMismatch(ChecksumMismatch):
    """A resumable upload's PATCH whose bytes do not match its ``Upload-Checksum`` (tus's status 460)."""

    status = 460


class ExpectationFailed(ClientFault):
    status = 417
    code = "expectation_failed"


class PayloadTooLarge(ClientFault):
    status = 413
    code = "payload_too_large"


class RangeNotSatisfiable(ClientFault):
    status = 416
    code = "range_not_satisfiable"


class Infected(ClientFault):
    status = 422
    code = "infected"

    def __init__(self, signature: str) -> None:
        super().__init__(f"The upload was rejected: the virus scan found {signature}.")
        self.signature = signature


class PluginError(PluginFault):
    status = 500
    code = "plugin_error"

    def __init__(self, plugin: str, message: str | None = None) -> None:
        super().__init__(message or f"The plugin {plugin!r} failed; the upload was not stored.")
        self.plugin = plugin


class UpstreamError(UpstreamFault):
    status = 502
    code = "upstream_error"


class Overloaded(ServerFault):
    code = "overloaded"


class ScannerUnavailable(UpstreamFault, _RetryLater):
    status = 503
    code = "scanner_unavailable"


class Draining(ServerFault):
    code = "draining"


class NotReady(ServerFault):
    code = "not_ready"


class UpstreamTimeout(UpstreamFault):
    status = 504
    code = "upstream_timeout"
