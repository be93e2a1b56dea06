"""``[s3_api]``, ``[[s3_api.credentials]]`` and ``s3_api_bucket``: what start-up refuses, the secret from the
environment, masked by ``check-config``; ``serve`` with the S3 API on a port of its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiouploader.config import ConfigError, validate
from aiouploader.config_file import load

ROUTE = {"path": "/files", "bucket": "incoming", "s3_api_bucket": "files"}
CREDENTIAL = {"access_key_id": "AKIDEXAMPLE", "secret_access_key": "secret-of-the-example"}


def config(routes: list[dict[str, Any]] | None = None, **s3_api: Any) -> dict[str, Any]:
    return {"routes": routes or [ROUTE], "s3_api": {"port": 9000, "credentials": [CREDENTIAL], **s3_api}}


def test_without_an_s3_api_table_there_is_no_listener() -> None:
    assert validate({"routes": [ROUTE]}).s3_api is None


def test_a_route_with_an_s3_api_bucket_and_credentials_is_accepted() -> None:
    api = validate(config()).s3_api
    assert api is not None and api.host == "127.0.0.1" and api.port == 9000
    assert api.credentials[0].methods == ["GET", "HEAD", "PUT", "POST", "DELETE"] and api.credentials[0].prefix == ""


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (config([{**ROUTE, "s3_api_bucket": "Files"}]), "routes[0].s3_api_bucket: must be an S3 bucket name"),
        (config([{**ROUTE, "s3_api_bucket": "f"}]), "routes[0].s3_api_bucket: must be an S3 bucket name"),
        (
            config([ROUTE, {**ROUTE, "path": "/other", "prefix": "o/"}]),
            "routes[1].s3_api_bucket: 'files' is the bucket of /files already",
        ),
        (config([{"path": "/files", "bucket": "incoming"}]), "s3_api: no route has an s3_api_bucket"),
        (config(credentials=[]), "s3_api.credentials: List should have at least 1 item"),
        (config(credentials=[CREDENTIAL, CREDENTIAL]), "'AKIDEXAMPLE' is there twice"),
        (config(credentials=[{**CREDENTIAL, "routes": ["/nope"]}]), "s3_api.credentials[0].routes: /nope is not"),
        (config(credentials=[{**CREDENTIAL, "access_key_id": "a/b"}]), "s3_api.credentials[0].access_key_id"),
        (config(credentials=[{**CREDENTIAL, "methods": ["PATCH"]}]), "s3_api.credentials[0].methods[0]"),
        ({**config(), "server": {"port": 9000}}, "s3_api.port: 9000 is server.port already"),
        ({"routes": [ROUTE], "s3_api": {"credentials": [CREDENTIAL]}}, "s3_api.port: Field required"),
    ],
)
def test_an_unusable_s3_api_setting_is_refused_naming_it(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as raised:
        validate(data)
    assert named in str(raised.value)


CONFIG = """
[[routes]]
path = "/files"
bucket = "incoming"
s3_api_bucket = "files"

[s3_api]
port = 9000

[[s3_api.credentials]]
access_key_id = "AKIDEXAMPLE"
secret_access_key = "set-from-the-environment"
prefix = "ci/"
"""


def test_the_secret_comes_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    env = {"AIOUPLOADER_S3_API__CREDENTIALS__0__SECRET_ACCESS_KEY": "the-real-secret-from-env"}
    loaded = load(path, env)
    assert loaded.s3_api is not None
    assert loaded.s3_api.credentials[0].secret_access_key == "the-real-secret-from-env"


def test_check_config_masks_the_secret_and_shows_the_access_key_id(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AIOUPLOADER_S3_API__CREDENTIALS__0__SECRET_ACCESS_KEY": "env-secret-xyz"},
    )
    assert run.returncode == 0, run.stderr
    assert "env-secret-xyz" not in run.stdout and "set-from-the-environment" not in run.stdout
    shown = json.loads(run.stdout)["s3_api"]["credentials"][0]
    assert shown["secret_access_key"] == "***"
    assert shown["access_key_id"] == "AKIDEXAMPLE" and shown["prefix"] == "ci/"
