"""What the numbers were measured on: the machine, the versions, the code and the command."""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from .configurations import TUS, GiB
from .tus import tus_node_version
from .workspace import find_rclone


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _command_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False).stdout
        return out.splitlines()[0].strip() if out else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def code_version() -> str:
    """The commit of the aiouploader that runs, and whether its package has uncommitted changes (read-only git)."""
    spec = importlib.util.find_spec("aiouploader")
    if spec is None or spec.origin is None:
        return "aiouploader: not found"
    package = Path(spec.origin).parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}  # git status must not rewrite the index

    def git(*argv: str) -> str:
        try:
            result = subprocess.run(
                ["git", "-C", str(package), *argv], capture_output=True, text=True, timeout=10, check=False, env=env
            )
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return f"aiouploader from {package}"
    dirty = git("status", "--porcelain", "--", ".")
    return f"aiouploader at commit {commit}" + (" plus uncommitted changes in the package" if dirty else "")


def machine(args: argparse.Namespace, uvicorn_http: str) -> list[str]:
    """The lines above the Markdown tables: machine, versions, code and command."""
    model = "?"
    with open("/proc/cpuinfo") as file:
        for line in file:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = _command_version(["nproc"])
    rclone = find_rclone(args.rclone) or "rclone"
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // GiB
    tus = f"; Node.js {_command_version(['node', '--version'])}, {tus_node_version()}" if TUS & set(args.only) else ""
    return [
        f"Machine: `nproc` = {nproc}, CPU: {model}, {memory} GiB RAM, Linux {platform.release()}",
        f"Python {platform.python_version()}; aiouploader {_version('aiouploader')}, aiohttp {_version('aiohttp')}, "
        f"aioboto3 {_version('aioboto3')}, boto3 {_version('boto3')}, starlette {_version('starlette')}, "
        f"uvicorn {_version('uvicorn')} (--http {uvicorn_http}); {_command_version([rclone, 'version'])}; "
        f"{' '.join(_command_version(['curl', '--version']).split()[:2])}{tus}",
        f"Code: {code_version()}. Command: `{shlex.join([sys.executable, *sys.argv])}`",
    ]
