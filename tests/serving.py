"""aiouploader as a subprocess, for what only a real process shows: signals, exit status, logs."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiouploader.testing import S3Server, free_port, wait_for_port


def rss(pid: int) -> int:
    """The resident memory of process ``pid``, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError("VmRSS")


def minor_faults(pid: int) -> int:
    """Page faults process ``pid`` has taken without I/O: mostly fresh pages it touched (proc(5), minflt)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[7])


def mapped_files(pid: int) -> set[str]:
    """The files mapped into process ``pid``'s memory: its executable, shared libraries, extension modules."""
    lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
    return {fields[5] for fields in (line.split(maxsplit=5) for line in lines) if len(fields) == 6}


@dataclass
class Served:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def serve(
    tmp_path: Path,
    s3: S3Server,
    bucket: str,
    *,
    server: str = "",
    s3_settings: str = "",
    prefix: str = "",
    plugins: Sequence[str] = ("checksum",),
    part_size: str = "5MiB",
    env: Mapping[str, str] | None = None,
) -> Served:
    """Start ``aiouploader serve`` with one route ``/u`` on ``bucket``; extra TOML lines per section."""
    port = free_port()
    config = tmp_path / f"config-{port}.toml"
    config.write_text(
        f"[server]\nport = {port}\n{server}\n"
        f'[s3]\nendpoint_url = "{s3.endpoint_url}"\npart_size = "{part_size}"\n{s3_settings}\n'
        f'[[routes]]\npath = "/u"\nbucket = "{bucket}"\nprefix = "{prefix}"\nplugins = {json.dumps(list(plugins))}\n'
    )
    log = tmp_path / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aiouploader", "serve", "--config", str(config)], stdout=out, stderr=out, env=env
        )
    try:
        wait_for_port(port, process, "aiouploader")
    except BaseException:
        process.kill()
        process.wait()
        raise
    return Served(f"http://127.0.0.1:{port}", process, log)
