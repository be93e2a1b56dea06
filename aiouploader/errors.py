"""The errors an upload can end with, each knowing its HTTP status and JSON code."""

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


class BadRequest(UploadError):
    status = 400
    code = "bad_request"


class InvalidKey(UploadError):
    status = 400
    code = "invalid_key"


class ChecksumMismatch(UploadError):
    status = 400
    code = "checksum_mismatch"


class Unauthorized(UploadError):
    status = 401
    code = "unauthorized"


class Forbidden(UploadError):
    status = 403
    code = "forbidden"


class NotFound(UploadError):
    status = 404
    code = "not_found"


class MethodNotAllowed(UploadError):
    status = 405
    code = "method_not_allowed"


class RequestTimeout(UploadError):
    status = 408
    code = "request_timeout"


class PreconditionFailed(UploadError):
    status = 412
    code = "precondition_failed"


class ObjectChanged(UploadError):
    status = 409
    code = "conflict"


class ExpectationFailed(UploadError):
    status = 417
    code = "expectation_failed"


class PayloadTooLarge(UploadError):
    status = 413
    code = "payload_too_large"


class RangeNotSatisfiable(UploadError):
    status = 416
    code = "range_not_satisfiable"


class Infected(UploadError):
    status = 422
    code = "infected"

    def __init__(self, signature: str) -> None:
        super().__init__(f"The upload was rejected: the virus scan found {signature}.")
        self.signature = signature


class PluginError(UploadError):
    status = 500
    code = "plugin_error"

    def __init__(self, plugin: str, message: str | None = None) -> None:
        super().__init__(message or f"The plugin {plugin!r} failed; the upload was not stored.")
        self.plugin = plugin


class UpstreamError(UploadError):
    status = 502
    code = "upstream_error"


class _RetryLater(UploadError):
    status = 503

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


class Overloaded(_RetryLater):
    code = "overloaded"


class ScannerUnavailable(_RetryLater):
    code = "scanner_unavailable"


class Draining(_RetryLater):
    code = "draining"


class NotReady(_RetryLater):
    code = "not_ready"


class UpstreamTimeout(UploadError):
    status = 504
    code = "upstream_timeout"
