"""``aiouploader serve`` start-up: whatever stops it is one line and status 2, or a quiet Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aiouploader.testing import free_port, wait_for_port

from .test_config import assert_refused

# No S3 is needed to get as far as listening: no orphan sweep, an endpoint nobody answers.
OFFLINE = (
    '[s3]\nendpoint_url = "http://127.0.0.1:9"\norphan_ttl = 0\n'
    '[[routes]]\npath = "/uploads"\nbucket = "incoming"\nplugins = ["checksum"]\n'
)


def environment(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("AIOUPLOADER_")}, **extra}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(OFFLINE)
    return path


@pytest.mark.parametrize(
    ("option", "named"),
    [(["--port", "99999"], "server.port"), (["--port", "-1"], "server.port"), (["--host", "bad host!"], "server.host")],
)
def test_command_line_overrides_are_validated_like_the_file(config: Path, option: list[str], named: str) -> None:
    assert_refused(["serve", "--config", str(config), *option], named, environment())


def test_a_port_in_use_is_one_line(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = assert_refused(["serve", "--config", str(config), "--port", str(port)], "server.port", environment())
    assert f"127.0.0.1:{port}" in line and "in use" in line


def test_a_host_that_does_not_resolve_is_one_line(config: Path) -> None:
    line = assert_refused(["serve", "--config", str(config), "--host", "nohost.invalid"], "server.host", environment())
    assert "nohost.invalid" in line


SLOW_PLUGIN = """
import os, pathlib, time

pathlib.Path(os.environ["SLOW_PLUGIN_LOADING"]).touch()
time.sleep(60)
"""


def interruptible() -> None:
    """SIGINT as a terminal's Ctrl-C gives it: a test run started in the background inherits it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_start_up_exits_quietly(tmp_path: Path, config: Path) -> None:
    """A plugin that takes its time to import holds start-up where the test can interrupt it."""
    (tmp_path / "slow_plugin_for_cli_test.py").write_text(SLOW_PLUGIN)
    dist = tmp_path / "slow_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: slow-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[aiouploader]\nslow = slow_plugin_for_cli_test\n")
    loading = tmp_path / "loading"
    env = environment(PYTHONPATH=str(tmp_path), SLOW_PLUGIN_LOADING=str(loading))
    process = subprocess.Popen(
        [sys.executable, "-m", "aiouploader", "serve", "--config", str(config), "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=interruptible,
    )
    try:
        deadline = time.monotonic() + 30
        while not loading.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stderr and process.stderr.read()
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert out == ""


def test_the_slow_imports_happen_where_ctrl_c_is_caught() -> None:
    """Importing aiohttp, pydantic and botocore is most of start-up: main() does it, not the import of the CLI."""
    heavy = ("aiohttp", "pydantic", "botocore", "aiouploader.app")
    check = f"import sys, aiouploader.cli; print([m for m in {heavy!r} if m in sys.modules])"
    run = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, env=environment(), check=True)
    assert run.stdout.strip() == "[]"


def test_serve_dev_refuses_an_invalid_setting_from_the_environment() -> None:
    env = environment(AIOUPLOADER_S3__PART_SIZE="1MiB")
    assert_refused(["serve", "--dev"], "s3.part_size", env)


def test_serve_dev_applies_the_environment(tmp_path: Path) -> None:
    port = free_port()
    env = environment(AIOUPLOADER_SERVER__PORT=str(port), AIOUPLOADER_ROUTES__0__PATH="/files")
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aiouploader", "serve", "--dev"], stdout=out, stderr=out, env=env
        )
    try:
        wait_for_port(port, process, "aiouploader serve --dev")
        deadline = time.monotonic() + 10
        while "curl -T" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"curl -T README.md http://127.0.0.1:{port}/files/hello.txt" in log.read_text()
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0, log.read_text()


def test_port_0_announces_the_ports_the_system_chose(tmp_path: Path, config: Path) -> None:
    config.write_text(
        OFFLINE
        + 's3_api_bucket = "files"\n[s3_api]\nport = 0\n'
        + '[[s3_api.credentials]]\naccess_key_id = "AKIDPORTZERO"\nsecret_access_key = "'
        + "s" * 40
        + '"\n'
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "aiouploader", "serve", "--config", str(config), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        ports = [int(line.rsplit(":", 1)[1]) for line in lines]
        assert lines[0].startswith("aiouploader ") and lines[1].startswith("S3 API listening on http://127.0.0.1:")
        assert 0 not in ports and ports[0] != ports[1]
        for port in ports:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
