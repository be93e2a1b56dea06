from __future__ import annotations

from pathlib import Path

import pytest

from aiouploader.testing import S3Server
from tests.test_tls import self_signed

pytest_plugins = ["tests.fixtures.clamd"]


@pytest.fixture(params=["moto", "rclone"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Every test that uses S3 runs against both real servers."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a self-signed certificate for 127.0.0.1 (cert.pem) and its key (key.pem)."""
    directory = tmp_path_factory.mktemp("tls")
    self_signed(directory)
    return directory
