"""The S3 client's TLS setting from its endpoint."""

from __future__ import annotations

from aiouploader.app import tls_verify


def test_an_endpoint_over_plain_http_builds_no_tls_context() -> None:
    assert tls_verify("http://127.0.0.1:9000") is False
    assert tls_verify("HTTP://minio.internal:9000") is False


def test_an_https_endpoint_or_aws_keeps_botocores_verification() -> None:
    assert tls_verify("https://s3.eu-west-1.amazonaws.com") is None
    assert tls_verify(None) is None
