"""Configurations (k) and (l): the tus Node server and tus-js-client in bench/tus-node/, installed by npm."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

TUS_NODE = Path(__file__).resolve().parent / "tus-node"


def install_tus_node() -> None:
    """``npm ci`` in bench/tus-node/ unless its node_modules was installed from the current package-lock.json."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("bench: (k) and (l) need node and npm (Node.js 20.19 or later)")
    installed = TUS_NODE / "node_modules" / ".package-lock.json"
    if installed.exists() and installed.stat().st_mtime > (TUS_NODE / "package-lock.json").stat().st_mtime:
        return
    argv = ["npm", "ci", "--prefix", str(TUS_NODE), "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired:
        raise SystemExit("bench: npm ci in bench/tus-node took over 600 s") from None
    if done.returncode != 0:
        raise SystemExit(f"bench: npm ci in bench/tus-node failed: {done.stderr.strip()[-2000:]}")


def tus_node_version() -> str:
    """The versions of the tus packages installed in bench/tus-node/."""
    versions = []
    for name in ("@tus/server", "@tus/s3-store", "tus-js-client"):
        try:
            package = json.loads((TUS_NODE / "node_modules" / name / "package.json").read_text())
            versions.append(f"{name} {package['version']}")
        except (OSError, ValueError, KeyError):
            versions.append(f"{name} not installed")
    return ", ".join(versions)
