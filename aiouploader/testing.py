"""Pytest fixtures for testing aiouploader and its plugins against real S3 servers.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin's own
tests can ask for:

* ``moto_server`` / ``rclone_server``: an S3 server in a subprocess on loopback
  (moto's server mode, ``rclone serve s3`` on a temporary directory);
* ``s3_server``: moto's, unless the test module parametrizes it;
* ``bucket``: a new, empty bucket on ``s3_server``;
* ``make_proxy``: start aiouploader in-process with the routes you give it
  and get a :class:`Proxy` (its URL and an aiohttp session; with ``s3_api``,
  the S3 API's URL too).

:func:`serve_process` starts it as a process of its own instead, for what
only a process shows: signals, exit status, shutdown.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import pluggy
import pytest
from aiohttp import web
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from .app import make_app, server_options
from .config import Config, validate
from .plugin_manager import make_plugin_manager
from .ports import free_port as free_port
from .ports import wait_for_port as wait_for_port
from .runner import Runner
from .s3.errors import code_and_status
from .s3api.server import make_s3_api_app

ACCESS_KEY = "aiouploader-test"
SECRET_KEY = "aiouploader-test-secret"


@dataclass
class S3Server:
    """An S3 server this test session started, and a boto3 client for it."""

    kind: str
    endpoint_url: str
    process: subprocess.Popen[bytes]
    root: Path | None = None
    _client: Any = field(default=None, repr=False)

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name="us-east-1",
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
            )
        return self._client

    def create_bucket(self) -> str:
        name = f"test-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def get(self, bucket: str, key: str) -> bytes:
        body: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body

    def multipart_uploads(self, bucket: str) -> list[dict[str, Any]]:
        """Multipart uploads in progress (rclone's NoSuchUpload for "never had one" reads as none)."""
        try:
            uploads: list[dict[str, Any]] = self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
        except ClientError as exc:
            if code_and_status(exc)[0] == "NoSuchUpload":
                return []
            raise
        return uploads

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


def _bin(name: str) -> str:
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} is not installed: pip install 'aiouploader[test]'")
    return found


def start_moto() -> S3Server:
    port = free_port()
    process = subprocess.Popen(
        [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "moto_server")
    return S3Server("moto", f"http://127.0.0.1:{port}", process)


def start_rclone(root: Path | None = None, port: int | None = None) -> S3Server:
    root = root or Path(tempfile.mkdtemp(prefix="aiouploader-rclone-"))
    port = port or free_port()
    process = subprocess.Popen(
        [
            _bin("rclone"),
            "serve",
            "s3",
            "--addr",
            f"127.0.0.1:{port}",
            "--auth-key",
            f"{ACCESS_KEY},{SECRET_KEY}",
            "--config",
            "/dev/null",
            # No reorder buffer: each part is answered once it is written (docs/operations.md).
            "--multipart-streaming-buffer-limit",
            "1",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process, "rclone serve s3")
    return S3Server("rclone", f"http://127.0.0.1:{port}", process, root)


@pytest.fixture(scope="session", autouse=True)
def _s3_credentials() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    os.environ.update({"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    server = start_moto()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rclone_server() -> Iterator[S3Server]:
    server = start_rclone()
    yield server
    server.stop()


@pytest.fixture
def s3_server(moto_server: S3Server) -> S3Server:
    return moto_server


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket()


@dataclass
class Served:
    """``aiouploader serve`` in a process of its own, for what only a real process shows: signals, exit status."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    """Where its stdout and stderr go."""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def serve_process(tmp_path: Path, config: str, env: Mapping[str, str] | None = None, port: int | None = None) -> Served:
    """Start ``python -m aiouploader serve --port PORT`` with the TOML ``config``, on ``port`` (a free one unless
    given: e.g. the port of a server stopped, to start it again) of ``server.host`` (127.0.0.1 unless ``config``
    says)."""
    port = port or free_port()
    path = tmp_path / f"config-{port}.toml"
    path.write_text(config)
    log = tmp_path / f"server-{port}.log"
    command = [sys.executable, "-m", "aiouploader", "serve", "--config", str(path), "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        wait_for_port(port, process, "aiouploader")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Served(f"http://127.0.0.1:{port}", process, log)


@dataclass
class Proxy:
    """A running aiouploader and a client session for it."""

    url: str
    session: aiohttp.ClientSession
    config: Config
    app: Any
    s3_api_url: str | None = None
    """The S3 API's endpoint, when the config has ``[s3_api]`` (its port 0: any free one); HTTPS with
    ``server.tls_cert``, as ``serve`` does."""

    def __call__(self, path: str) -> str:
        return self.url + path


MakeProxy = Callable[..., Awaitable[Proxy]]


def proxy_config(endpoint_url: str, routes: list[dict[str, Any]], **sections: Any) -> Config:
    """The config of a test proxy; it sweeps no orphans unless ``s3={"orphan_ttl": ...}`` asks."""
    s3 = {"endpoint_url": endpoint_url, "orphan_ttl": 0, **sections.pop("s3", {})}
    return validate({"routes": routes, "s3": s3, **sections})


@pytest.fixture
async def make_proxy(s3_server: S3Server) -> AsyncIterator[MakeProxy]:
    """``await make_proxy(routes=[...], plugins={...}, s3={...}, pm=None)`` starts aiouploader."""
    started: list[tuple[list[web.AppRunner], aiohttp.ClientSession]] = []

    async def make(routes: list[dict[str, Any]], pm: pluggy.PluginManager | None = None, **sections: Any) -> Proxy:
        config = proxy_config(s3_server.endpoint_url, routes, **sections)
        app = make_app(config, pm or make_plugin_manager())
        runner = Runner(app, **server_options(config))
        await runner.setup()
        session = aiohttp.ClientSession(auto_decompress=False)
        runners: list[web.AppRunner] = [runner]
        started.append((runners, session))
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        proxy = Proxy(f"http://{host}:{port}", session, config, app)
        if config.s3_api is not None:
            s3_api_runner = web.AppRunner(make_s3_api_app(app, config), **server_options(config))
            await s3_api_runner.setup()
            runners.insert(0, s3_api_runner)
            tls = None
            if config.server.tls_cert is not None and config.server.tls_key is not None:
                tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                tls.load_cert_chain(config.server.tls_cert, config.server.tls_key)
            await web.TCPSite(s3_api_runner, "127.0.0.1", config.s3_api.port, ssl_context=tls).start()
            s3_host, s3_port = s3_api_runner.addresses[0][:2]
            proxy.s3_api_url = f"{'https' if tls else 'http'}://{s3_host}:{s3_port}"
        return proxy

    yield make
    for runners, session in started:
        await session.close()
        for started_runner in runners:
            await started_runner.cleanup()
