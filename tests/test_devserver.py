"""``aiouploader serve --dev``: a first try without AWS, on the S3 server it embeds."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiouploader.testing import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """The server's URL, and the lines it printed once ready."""
    port, s3_api_port = free_port(), free_port()
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aiouploader", "serve", "--dev", "--port", str(port)],
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "AIOUPLOADER_CONFIG"},
                "AIOUPLOADER_S3_API__PORT": str(s3_api_port),
            },
        )
    try:
        wait_for_port(port, process, "aiouploader serve --dev")
        for _ in range(100):
            lines = log.read_text().splitlines()
            if sum("curl " in line for line in lines) == 2 and any(" aws " in line for line in lines):
                break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", lines
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, log.read_text()


def curl(*args: str) -> bytes:
    return subprocess.run(["curl", "-sS", "--fail-with-body", *args], cwd=ROOT, capture_output=True, check=True).stdout


def test_the_printed_curl_lines_store_and_return_the_file(dev_server: tuple[str, list[str]]) -> None:
    _, lines = dev_server
    put, get = (shlex.split(line.strip()) for line in lines if line.strip().startswith("curl "))
    assert b'"size"' in subprocess.run(put, cwd=ROOT, capture_output=True, check=True).stdout
    assert subprocess.run(get, cwd=ROOT, capture_output=True, check=True).stdout == (ROOT / "README.md").read_bytes()


@pytest.mark.parametrize("body", [b"text=like&a=form\n", os.urandom(3000)], ids=["text", "binary"])
def test_a_body_sent_as_a_form_is_stored_whole(dev_server: tuple[str, list[str]], tmp_path: Path, body: bytes) -> None:
    url, _ = dev_server
    (tmp_path / "body").write_bytes(body)
    curl("-X", "PUT", "--data-binary", f"@{tmp_path / 'body'}", f"{url}/uploads/form-typed")  # curl says: a form
    assert curl(f"{url}/uploads/form-typed") == body


def test_the_printed_aws_line_stores_the_file_through_the_s3_api(
    dev_server: tuple[str, list[str]], tmp_path: Path
) -> None:
    url, lines = dev_server
    (line,) = (line.strip() for line in lines if " aws --endpoint-url " in line)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    subprocess.run(["sh", "-c", line], cwd=ROOT, capture_output=True, check=True, env=env)
    assert curl(f"{url}/uploads/hello.txt") == (ROOT / "README.md").read_bytes()
