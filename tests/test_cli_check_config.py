"""``aiouploader check-config``: the effective config, with every secret masked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from aiouploader.masking import masked

SIGNING_SECRET = "signing-secret-" + "s" * 32
CONFIG = """
[s3]
endpoint_url = "http://minio:minio-password@127.0.0.1:9000"

[[routes]]
path = "/uploads"
bucket = "incoming"
plugins = ["webhook"]

[plugins.webhook]
url = "https://hooks:hook-password@hooks.example/x?token=query-token&team=blue&X-Amz-Signature=query-signature"

[auth]
signing_keys = {k2024 = "file-secret-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}

[[auth.tokens]]
name = "ci"
sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
"""


def test_check_config_masks_every_secret(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    run = subprocess.run(
        [sys.executable, "-m", "aiouploader", "check-config", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "AIOUPLOADER_AUTH__SIGNING_KEYS__K2025": SIGNING_SECRET},
    )
    assert run.returncode == 0, run.stderr
    for secret in ("file-secret", SIGNING_SECRET, "minio-password", "hook-password", "query-token", "query-signature"):
        assert secret not in run.stdout
    shown = json.loads(run.stdout)
    assert shown["auth"]["signing_keys"] == {"k2024": "***", "k2025": "***"}
    assert shown["s3"]["endpoint_url"] == "http://minio:***@127.0.0.1:9000"
    assert shown["plugins"]["webhook"]["url"] == (
        "https://hooks:***@hooks.example/x?token=***&team=blue&X-Amz-Signature=***"
    )
    assert shown["auth"]["tokens"][0]["sha256"] == "***"
    assert shown["auth"]["tokens"][0]["name"] == "ci", "a token's record is not itself a secret"


def test_plugin_names_are_not_setting_names() -> None:
    """A plugin called ``token_audit`` keeps its settings visible; its ``api_key`` does not."""
    data: dict[str, Any] = {
        "routes": [{"path": "/u", "plugin_settings": {"token_audit": {"level": "high", "api_key": "k"}}}],
        "plugins": {"token_audit": {"level": "low", "headers": {"Authorization": "Bearer x"}}},
    }
    assert masked(data) == {
        "routes": [{"path": "/u", "plugin_settings": {"token_audit": {"level": "high", "api_key": "***"}}}],
        "plugins": {"token_audit": {"level": "low", "headers": {"Authorization": "***"}}},
    }


def test_a_url_keeps_what_is_not_secret() -> None:
    data = {"s3": {"endpoint_url": "https://user@h:9000/a;b?x=1&code=&Signature=s#frag"}, "unset": {"secret": ""}}
    assert masked(data) == {
        "s3": {"endpoint_url": "https://user@h:9000/a;b?x=1&code=&Signature=***#frag"},
        "unset": {"secret": ""},
    }
