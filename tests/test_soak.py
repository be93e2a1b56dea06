"""A bounded soak: 32 concurrent clients (some hanging up mid-body) against an aiouploader process and rclone.

The short run takes about 20 seconds of load; ``AIOUPLOADER_SOAK_SECONDS=600``
runs a long one. Afterwards: no 5xx, no corrupt result, no multipart upload
left, and the server's RSS back near its baseline.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from aiouploader.testing import S3Server

from .serving import rss, serve

MiB = 1024**2
SECONDS = float(os.environ.get("AIOUPLOADER_SOAK_SECONDS", "15"))
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(rclone_server: S3Server, tmp_path: Path) -> Iterator[tuple[str, int, str]]:
    bucket = rclone_server.create_bucket()
    served = serve(
        tmp_path,
        rclone_server,
        bucket,
        server='log_level = "warning"\nbody_idle_timeout = 5',
        s3_settings="parts_in_flight = 2",
        plugins=("size_limit", "checksum"),
    )
    try:
        yield served.url, served.process.pid, bucket
    finally:
        served.stop()


def load(url: str, seconds: float, count: int, seed: int) -> dict[str, object]:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "tests.loadgen", "--url", url, "--clients", "32", "--seconds", str(seconds)),
            *("--count", str(count), "--disconnect-ratio", "0.15", "--seed", str(seed)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=seconds + 180,
        check=True,
    )
    summary: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return summary


def test_soak(server: tuple[str, int, str], rclone_server: S3Server) -> None:
    url, pid, bucket = server
    assert requests.get(url + "/readyz", timeout=10).status_code == 200
    load(url + "/u", seconds=3, count=64, seed=1)  # warm-up: pools, allocator arenas
    time.sleep(1)
    baseline = rss(pid)
    summary = load(url + "/u", seconds=SECONDS, count=max(400, int(SECONDS * 40)), seed=2)
    print(f"soak: {json.dumps(summary)}")
    statuses = summary["statuses"]
    assert isinstance(statuses, dict)
    assert not [status for status in statuses if status.startswith("5")], summary
    assert summary["mismatches"] == 0, summary
    assert summary["transport_errors"] == [], summary
    assert summary["disconnects"], "the load had no client hanging up mid-body"
    deadline = time.monotonic() + 15
    while rclone_server.multipart_uploads(bucket) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert rclone_server.multipart_uploads(bucket) == []
    time.sleep(1)
    after = rss(pid)
    print(f"soak: RSS {baseline / MiB:.0f} MiB before, {after / MiB:.0f} MiB after")
    assert after < baseline + 64 * MiB, f"RSS grew from {baseline / MiB:.0f} to {after / MiB:.0f} MiB"
