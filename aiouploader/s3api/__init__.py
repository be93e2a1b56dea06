"""The S3 API's request verification: who signed a request, and what its body really is.

This package is the layer under an S3-compatible listener, kept free of HTTP and
configuration so that it can be proven on its own:

- `.sigv4`: `verify_request` checks an ``Authorization: AWS4-HMAC-SHA256`` header or a
  presigned URL against a credentials lookup and a clock, and returns a
  `VerifiedRequest` naming the access key, the declared payload mode and the signing
  context; it raises `S3Error` subclasses with S3's codes and statuses otherwise.
- `.chunked`: `ChunkedDecoder` turns an ``aws-chunked`` body back into the object's
  bytes as it streams, checking chunk signatures, the trailer signature, trailing
  checksums and the decoded length.
- `.sigv2`: a Signature Version 2 presigned URL (what boto3 presigns by default), which
  `verify_request` hands over to.
- `.auth_fields`: the signature's fields from the header or the presigned query.
- `.checksums`: the ``x-amz-checksum-*`` algorithms, incrementally.
- `.errors`: S3's error codes as exceptions.

What the next steps build on it: the listener calls `verify_request` with the raw path
and query (``request.raw_path`` split at ``?``), the headers and the configured
credentials, then picks the body's reader from ``payload_mode``: `PayloadSha256` for a
signed digest, nothing for ``UNSIGNED-PAYLOAD``, `ChunkedDecoder.for_request` for the
streaming modes, feeding the decoded bytes to the plugin chain. The object is only
completed after the reader's final check (`PayloadSha256.verify`,
`ChunkedDecoder.finish`) passed; any `S3Error` before then aborts it. The operations
(PutObject, UploadPart, …) render `S3Error.code`, `.status` and `.message` as S3's XML
error body.
"""

from .checksums import Checksum
from .chunked import ChunkedDecoder
from .errors import S3Error
from .sigv4 import CredentialsLookup, PayloadMode, PayloadSha256, VerifiedRequest, verify_request

__all__ = [
    "Checksum",
    "ChunkedDecoder",
    "CredentialsLookup",
    "PayloadMode",
    "PayloadSha256",
    "S3Error",
    "VerifiedRequest",
    "verify_request",
]
