"""HTTPS without a mesh, the warning about aiohttp's pure-Python parser, and aiohttp's default TLS contexts with
their certificates loaded at their first connection."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import ssl
import subprocess
import sys
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


DEFERRED_CLIENT = """
import asyncio, json, ssl, sys
from aiouploader import tls

tls.defer_aiohttp_certificates()
import aiohttp
from aiohttp import connector, web

def loaded():
    return ssl._ssl._SSLContext.cert_store_stats(connector._SSL_CONTEXT_VERIFIED)["x509"]

async def main():
    cert, key = sys.argv[1:3]
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(cert, key)
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=served)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    before = loaded()
    async with aiohttp.ClientSession() as session:
        try:
            async with session.get(f"https://127.0.0.1:{port}/") as response:
                answer = await response.text()
        except aiohttp.ClientConnectorCertificateError:
            answer = "certificate refused"
    await runner.cleanup()
    patched = "set_default_verify_paths" in ssl.SSLContext.__dict__
    print(json.dumps({"before": before, "after": loaded(), "answer": answer, "patched": patched}))

asyncio.run(main())
"""


def deferred_client(tmp_path: Path, trusted: Path, cert: Path, key: Path) -> dict[str, object]:
    """What an aiohttp client with default settings answers from an HTTPS server of ``cert``, with ``trusted`` as
    the system's CA bundle, in a process where aiohttp was imported with its certificates deferred."""
    env = {**os.environ, "SSL_CERT_FILE": str(trusted), "SSL_CERT_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", DEFERRED_CLIENT, str(cert), str(key)], env=env, capture_output=True, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode()
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_aiohttp_loads_the_system_certificates_at_its_first_connection(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    result = deferred_client(tmp_path, trusted=cert, cert=cert, key=key)
    assert result == {"before": 0, "after": 1, "answer": "ok", "patched": False}


def test_aiohttp_with_deferred_certificates_still_refuses_an_unknown_one(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    other, _ = self_signed(tmp_path / "other")
    cert, key = self_signed(tmp_path)
    result = deferred_client(tmp_path, trusted=other, cert=cert, key=key)
    assert result == {"before": 0, "after": 1, "answer": "certificate refused", "patched": False}
