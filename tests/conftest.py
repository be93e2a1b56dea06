from __future__ import annotations

import pytest

from aiouploader.testing import S3Server

pytest_plugins = ["tests.fixtures.clamd"]


@pytest.fixture(params=["moto", "rclone"])
def s3_server(request: pytest.FixtureRequest) -> S3Server:
    """Every test that uses S3 runs against both real servers."""
    server: S3Server = request.getfixturevalue(f"{request.param}_server")
    return server
