"""The errors of the S3 API, named and numbered as S3 names and numbers them.

Each class carries the S3 error ``code`` (what goes into ``<Error><Code>``) and the
HTTP ``status``; the message is S3's where S3 publishes one::

    S3Error
    ├── 400  AuthorizationHeaderMalformed, AuthorizationQueryParametersError,
    │        InvalidArgument, InvalidRequest, InvalidURI, IncompleteBody,
    │        BadDigest, XAmzContentSHA256Mismatch, InvalidPart, InvalidPartOrder,
    │        MalformedXML, RequestTimeout, InvalidBucketName
    ├── 403  AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
    │        RequestTimeTooSkewed
    ├── 404  NoSuchBucket, NoSuchUpload
    ├── 409  BucketAlreadyOwnedByYou
    ├── 411  MissingContentLength
    └── 501  S3NotImplemented (code ``NotImplemented``)

The 403s are the client's credentials or signature; the 400s are a request S3 would
not parse; the 409 is a bucket that exists already. Nothing here is the proxy's own
failure.
"""

from __future__ import annotations


class S3Error(Exception):
    """A request refused the way S3 refuses it."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AccessDenied(S3Error):
    status = 403
    code = "AccessDenied"


class InvalidAccessKeyId(S3Error):
    status = 403
    code = "InvalidAccessKeyId"

    def __init__(self, message: str = "The AWS Access Key Id you provided does not exist in our records.") -> None:
        super().__init__(message)


class SignatureDoesNotMatch(S3Error):
    status = 403
    code = "SignatureDoesNotMatch"

    def __init__(
        self,
        message: str = (
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method."
        ),
    ) -> None:
        super().__init__(message)


class RequestTimeTooSkewed(S3Error):
    status = 403
    code = "RequestTimeTooSkewed"

    def __init__(
        self, message: str = "The difference between the request time and the current time is too large."
    ) -> None:
        super().__init__(message)


class AuthorizationHeaderMalformed(S3Error):
    status = 400
    code = "AuthorizationHeaderMalformed"


class AuthorizationQueryParametersError(S3Error):
    status = 400
    code = "AuthorizationQueryParametersError"


class InvalidArgument(S3Error):
    status = 400
    code = "InvalidArgument"


class InvalidRequest(S3Error):
    status = 400
    code = "InvalidRequest"


class InvalidURI(S3Error):
    status = 400
    code = "InvalidURI"

    def __init__(self, message: str = "Couldn't parse the specified URI.") -> None:
        super().__init__(message)


class IncompleteBody(S3Error):
    status = 400
    code = "IncompleteBody"


class BadDigest(S3Error):
    status = 400
    code = "BadDigest"


class XAmzContentSHA256Mismatch(S3Error):
    status = 400
    code = "XAmzContentSHA256Mismatch"

    def __init__(
        self, message: str = "The provided 'x-amz-content-sha256' header does not match what was computed."
    ) -> None:
        super().__init__(message)


class NoSuchBucket(S3Error):
    status = 404
    code = "NoSuchBucket"

    def __init__(self, message: str = "The specified bucket does not exist.") -> None:
        super().__init__(message)


class NoSuchUpload(S3Error):
    status = 404
    code = "NoSuchUpload"

    def __init__(
        self,
        message: str = (
            "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have "
            "been aborted or completed."
        ),
    ) -> None:
        super().__init__(message)


class BucketAlreadyOwnedByYou(S3Error):
    status = 409
    code = "BucketAlreadyOwnedByYou"

    def __init__(
        self, message: str = "Your previous request to create the named bucket succeeded and you already own it."
    ) -> None:
        super().__init__(message)


class InvalidBucketName(S3Error):
    status = 400
    code = "InvalidBucketName"

    def __init__(self, message: str = "The specified bucket is not valid.") -> None:
        super().__init__(message)


class InvalidPart(S3Error):
    status = 400
    code = "InvalidPart"


class InvalidPartOrder(S3Error):
    status = 400
    code = "InvalidPartOrder"

    def __init__(self, message: str = "The list of parts was not in ascending order.") -> None:
        super().__init__(message)


class MalformedXML(S3Error):
    status = 400
    code = "MalformedXML"

    def __init__(
        self, message: str = "The XML you provided was not well-formed or did not validate against our schema."
    ) -> None:
        super().__init__(message)


class RequestTimeout(S3Error):
    status = 400
    code = "RequestTimeout"


class MissingContentLength(S3Error):
    status = 411
    code = "MissingContentLength"


class S3NotImplemented(S3Error):
    status = 501
    code = "NotImplemented"
