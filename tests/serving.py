"""aiouploader as a subprocess, for what only a real process shows: signals, exit status, logs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiouploader.testing import S3Server, Served, serve_process


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
    return serve_process(
        tmp_path,
        f"[server]\n{server}\n"
        f'[s3]\nendpoint_url = "{s3.endpoint_url}"\npart_size = "{part_size}"\n{s3_settings}\n'
        f'[[routes]]\npath = "/u"\nbucket = "{bucket}"\nprefix = "{prefix}"\nplugins = {json.dumps(list(plugins))}\n',
        env,
    )
