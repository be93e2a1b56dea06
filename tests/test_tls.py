"""HTTPS without a mesh, and the warning about aiohttp's pure-Python parser."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aiouploader.testing import S3Server

from .serving import serve


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


async def test_the_server_speaks_https_with_a_certificate(tmp_path: Path, rclone_server: S3Server) -> None:
    bucket = rclone_server.create_bucket()
    cert, key = self_signed(tmp_path)
    served = serve(tmp_path, rclone_server, bucket, server=f'tls_cert = "{cert}"\ntls_key = "{key}"')
    url = served.url.replace("http://", "https://")
    try:
        context = ssl.create_default_context(cafile=str(cert))
        async with aiohttp.ClientSession() as session:
            async with session.put(url + "/u/secure", data=b"over tls", ssl=context) as response:
                assert response.status == 201
            async with session.get(url + "/u/secure", ssl=context) as response:
                assert await response.read() == b"over tls"
            with pytest.raises(aiohttp.ClientError):
                async with session.get(served.url + "/u/secure") as response:
                    await response.read()
    finally:
        served.stop()
    assert rclone_server.get(bucket, "secure") == b"over tls"


async def test_the_pure_python_parser_is_warned_about(tmp_path: Path, rclone_server: S3Server) -> None:
    bucket = rclone_server.create_bucket()
    served = serve(tmp_path, rclone_server, bucket, env={**os.environ, "AIOHTTP_NO_EXTENSIONS": "1"})
    served.stop()
    assert "C HTTP parser is not in use" in served.log.read_text()
