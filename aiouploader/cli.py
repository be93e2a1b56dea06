"""The command line: ``serve``, ``check-config``, ``plugins``."""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from . import __version__
from .app import build_routes, make_app
from .builtin import encryption
from .config import Config, ConfigError, load, validate
from .plugin_manager import make_plugin_manager

DEV_CONFIG = {
    "routes": [
        {
            "path": "/uploads",
            "bucket": "incoming",
            "plugins": ["size_limit", "checksum", "virus_scan"],
            "allow_delete": True,
        }
    ]
}
M_MMAP_THRESHOLD = -3
_SECRET = re.compile(r"secret|token|password|signing_key|credential", re.I)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiouploader", description="Streaming, pluggable uploads to S3.")
    parser.add_argument("--version", action="version", version=f"aiouploader {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--config", help="TOML config file (default: $AIOUPLOADER_CONFIG)")
    serve.add_argument("--host", help="listen address (overrides server.host)")
    serve.add_argument("--port", type=int, help="listen port (overrides server.port)")
    serve.add_argument("--dev", action="store_true", help="embedded S3 server, no AWS account needed")
    check = commands.add_parser("check-config", help="validate a config file and print the effective config")
    check.add_argument("path")
    commands.add_parser("plugins", help="list the installed plugins")
    return parser


def _masked(value: Any, name: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, name) for v in value]
    if _SECRET.search(name) and value:
        return "***"
    return value


def _load(path: str | None, dev: bool) -> Config:
    if dev and not path:
        import os

        if "AIOUPLOADER_CONFIG" not in os.environ:
            return validate(DEV_CONFIG)
    return load(path)


def serve(args: argparse.Namespace) -> int:
    config = _load(args.config, args.dev)
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        config = config.model_copy(update={"server": config.server.model_copy(update=overrides)})
    logging.basicConfig(level=config.server.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    pm = make_plugin_manager()
    build_routes(config, pm)
    _tune_allocator()
    dev_server = None
    if args.dev:
        from . import devserver

        config, dev_server = devserver.start(config)
    host, port = config.server.host, config.server.port
    route = config.routes[0].path

    def announce(message: str) -> None:
        print(f"aiouploader {__version__} listening on http://{host}:{port}", flush=True)
        if dev_server is not None:
            print(f"embedded S3 at {config.s3.endpoint_url}; try:", flush=True)
            print(f"  curl -T README.md http://{host}:{port}{route}/hello.txt", flush=True)
            print(f"  curl http://{host}:{port}{route}/hello.txt", flush=True)

    web.run_app(
        make_app(config, pm),
        host=host,
        port=port,
        print=announce,
        access_log=None,
        auto_decompress=False,
        read_bufsize=config.upload.block_size,
    )
    return 0


def _tune_allocator() -> None:
    """Keep glibc from holding on to freed part buffers.

    glibc raises its mmap threshold to the size of the largest block freed,
    after which freed multi-megabyte buffers stay in the heap: RSS then grows
    to about twice the live part buffers. A fixed threshold returns them.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(M_MMAP_THRESHOLD, 256 * 1024)
    except (OSError, AttributeError):
        pass


def check_config(args: argparse.Namespace) -> int:
    config = load(args.path)
    build_routes(config, make_plugin_manager())
    for route in config.routes:
        for warning in encryption.chain_warnings(route):
            print(f"aiouploader: warning: {warning}", file=sys.stderr)
    print(json.dumps(_masked(config.model_dump(mode="json")), indent=2))
    return 0


def plugins(args: argparse.Namespace) -> int:
    pm = make_plugin_manager()
    for name, plugin in sorted(pm.list_name_plugin()):
        if plugin is None:
            continue
        dist = dict(pm.list_plugin_distinfo()).get(plugin)
        version = f"{dist.project_name} {dist.version}" if dist else "built-in"
        hooks = ", ".join(sorted(h.name.removeprefix("aiouploader_") for h in pm.get_hookcallers(plugin) or []))
        print(f"{name}  ({version})  hooks: {hooks}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"serve": serve, "check-config": check_config, "plugins": plugins}[args.command]
    try:
        return command(args)
    except ConfigError as exc:
        print(f"aiouploader: invalid config: {exc}", file=sys.stderr)
        return 2
