"""The command line: ``serve``, ``check-config``, ``plugins``, ``sign``, ``hash-token``.

Only the standard library is imported up here: the rest (aiohttp, pydantic,
botocore) takes most of start-up, and is imported by the commands, where a
Ctrl-C is caught by :func:`main` rather than printed as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:
    import pluggy
    from aiohttp import web

    from .config import Config, ServerConfig

log = logging.getLogger(__name__)

DEV_CONFIG = {
    "routes": [
        {
            "path": "/uploads",
            "bucket": "incoming",
            "plugins": ["size_limit", "checksum", "virus_scan"],
            "allow_delete": True,
            "s3_api_bucket": "uploads",
        }
    ],
}
DEV_S3_API_KEY = ("dev", "dev-secret")
"""The S3 API's access key id and secret under ``serve --dev``, on loopback only, as the HTTP API is open there."""


def _dev_config(port: int | None) -> dict[str, Any]:
    """``serve --dev``'s config: the S3 API on the port after the HTTP API's."""
    key_id, secret = DEV_S3_API_KEY
    credentials = [{"access_key_id": key_id, "secret_access_key": secret}]
    return {**DEV_CONFIG, "s3_api": {"port": (port or 8080) + 1, "credentials": credentials}}


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
    sign = commands.add_parser("sign", help="print a signed upload URL")
    sign.add_argument("--config", help="TOML config file with [auth.signing_keys] (default: $AIOUPLOADER_CONFIG)")
    sign.add_argument("--key-id", required=True, help="the signing key to use")
    sign.add_argument("--method", default="PUT", choices=["PUT", "POST", "GET", "HEAD", "DELETE"])
    sign.add_argument("--route", required=True, help="the route's path, e.g. /uploads")
    scope = sign.add_mutually_exclusive_group(required=True)
    scope.add_argument("--key", help="the one key the URL may use")
    scope.add_argument("--prefix", help="any key under this prefix (and generated keys for POST)")
    sign.add_argument("--expires-in", type=int, default=900, help="seconds the URL stays valid (default 900)")
    sign.add_argument("--max-size", help="largest body allowed, e.g. 10MiB")
    sign.add_argument("--content-type", help="the only Content-Type allowed")
    sign.add_argument("--base-url", default="http://127.0.0.1:8080", help="where clients reach the server")
    hash_token = commands.add_parser(
        "hash-token",
        help="print the SHA-256 to put in [[auth.tokens]] for a token",
        usage="%(prog)s [-h] [--] TOKEN  (a TOKEN that starts with - goes after --)",
    )
    hash_token.add_argument("token", metavar="TOKEN")
    return parser


def _plugins(config: Config) -> pluggy.PluginManager:
    """The plugin manager, with every route's chain and every plugin table checked against it."""
    from .app import build_routes
    from .plugin_manager import make_plugin_manager

    pm = make_plugin_manager()
    build_routes(config, pm)
    return pm


def serve(args: argparse.Namespace) -> int:
    from aiohttp import http_parser

    from . import allocator, logs
    from .app import make_app
    from .config_file import load

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    config = load(args.config, default=_dev_config(args.port) if args.dev else None, server=overrides)
    logs.configure(config.server.log_level)
    for warning in config.warnings():
        log.warning(warning)
    if http_parser.HttpRequestParser is http_parser.HttpRequestParserPy:
        log.warning(
            "aiohttp's C HTTP parser is not in use (AIOHTTP_NO_EXTENSIONS is set or the extension is missing); "
            "several request-smuggling advisories affect only the pure-Python parser"
        )
    ssl_context = _tls(config)
    pm = _plugins(config)
    allocator.tune()
    dev_server = None
    if args.dev:
        from . import devserver

        config, dev_server = devserver.start(config)
    host, route = config.server.host, config.routes[0].path
    scheme = "https" if ssl_context else "http"

    def announce(port: int, s3_api_port: int | None) -> None:
        base = _base(scheme, host, port)
        print(f"aiouploader {__version__} listening on {base}", flush=True)
        if dev_server is not None:
            print(f"embedded S3 at {config.s3.endpoint_url}; try:", flush=True)
            print(f"  curl -T README.md {base}{route}/hello.txt", flush=True)
            print(f"  curl {base}{route}/hello.txt", flush=True)
        if config.s3_api is not None and s3_api_port is not None:
            s3_api = _base(scheme, config.s3_api.host, s3_api_port)
            print(f"S3 API listening on {s3_api}", flush=True)
            if dev_server is not None:
                key_id, secret = DEV_S3_API_KEY
                env = f"AWS_ACCESS_KEY_ID={key_id} AWS_SECRET_ACCESS_KEY={secret} AWS_DEFAULT_REGION={config.s3.region}"
                target = f"s3://{_first_bucket(config)}/hello.txt"
                print(f"  {env} aws --endpoint-url {s3_api} s3 cp README.md {target}", flush=True)

    asyncio.run(_run(make_app(config, pm), config, announce, ssl_context))
    return 0


def _first_bucket(config: Config) -> str | None:
    return next((route.s3_api_bucket for route in config.routes if route.s3_api_bucket), None)


def _base(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _tls(config: Config) -> ssl.SSLContext | None:
    from .config import ConfigError

    if config.server.tls_cert is None or config.server.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.server.tls_cert, config.server.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"server.tls_cert / server.tls_key: cannot load them ({exc})") from None
    return context


async def _run(
    app: web.Application,
    config: Config,
    announce: Callable[[int, int | None], None],
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then drain.

    Draining turns ``/readyz`` and new uploads into 503 ``draining`` while the
    listener stays open, gives uploads in flight ``server.shutdown_grace``
    seconds, cancels the rest (aborting their S3 uploads), gives the plugins'
    shutdown hooks what is left of the grace, then closes. A second signal
    ends the grace at once.
    """
    from aiohttp import web

    from . import allocator
    from .app import make_metrics_app, server_options
    from .config import ConfigError
    from .lifespan import LIFESPAN
    from .metrics import METRICS
    from .runner import Runner
    from .service import SERVICE

    await _try_listening(config.server)
    metrics_runner = None
    if config.server.metrics_port is not None:
        metrics_runner = web.AppRunner(make_metrics_app(app[METRICS]), access_log=None)
        await metrics_runner.setup()
    grace = config.server.shutdown_grace
    runner = Runner(
        app,
        shutdown_timeout=grace,
        **server_options(config),
    )
    await runner.setup()
    s3_api_runner = None
    try:
        # Before the first connection: a signal from then on drains, however soon it comes.
        stop, hurry = asyncio.Event(), asyncio.Event()

        def on_signal() -> None:
            (hurry if stop.is_set() else stop).set()

        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal)
        try:
            await web.TCPSite(runner, config.server.host, config.server.port, ssl_context=ssl_context).start()
        except OSError as exc:
            raise ConfigError(_cannot_listen(config.server, exc)) from None
        if config.s3_api is not None:
            from .s3api.server import make_s3_api_app  # about 1.5 MiB that a server without [s3_api] does not need

            s3_api_runner = web.AppRunner(make_s3_api_app(app, config), **server_options(config))
            await s3_api_runner.setup()
            await _listen(s3_api_runner, "s3_api.port", config.s3_api.host, config.s3_api.port, ssl_context)
        if metrics_runner is not None and config.server.metrics_port is not None:
            await _listen(metrics_runner, "server.metrics_port", config.server.metrics_host, config.server.metrics_port)
        announce(_port_of(runner), None if s3_api_runner is None else _port_of(s3_api_runner))
        allocator.settle()
        await stop.wait()
        deadline = loop.time() + grace
        log.info("draining: uploads in flight get %g seconds", grace)
        cancelled = await app[SERVICE].drain(grace, hurry)
        log.info("drained: %d uploads cancelled", cancelled)
        await app[LIFESPAN].shutdown(max(0.0, deadline - loop.time()), hurry)
    finally:
        if s3_api_runner is not None:
            await s3_api_runner.cleanup()
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()


def _port_of(runner: web.BaseRunner) -> int:
    """The port ``runner`` listens on: the one configured, or the one the system chose for port 0."""
    port: int = runner.addresses[0][1]
    return port


async def _listen(
    runner: web.AppRunner, setting: str, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> None:
    """Serve ``runner`` on a listener of its own; a ConfigError naming ``setting`` when it cannot listen."""
    from aiohttp import web

    from .config import ConfigError

    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(f"{setting}: cannot listen on {host}:{port} ({reason})") from None


async def _try_listening(server: ServerConfig) -> None:
    """Bind the address as aiohttp will, and let go: before anything starts (and logs), a failure is one line."""
    from .config import ConfigError

    try:
        probe = await asyncio.get_running_loop().create_server(
            asyncio.Protocol, server.host, server.port, reuse_address=True, start_serving=False
        )
    except OSError as exc:
        raise ConfigError(_cannot_listen(server, exc)) from None
    probe.close()
    await probe.wait_closed()


def _cannot_listen(server: ServerConfig, exc: OSError) -> str:
    address = f"{server.host}:{server.port}"
    if isinstance(exc, socket.gaierror):
        return f"server.host: cannot listen on {server.host} ({exc.strerror})"
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    if exc.errno in (errno.EADDRINUSE, errno.EACCES):
        return f"server.port: cannot listen on {address} ({reason})"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"server.host: cannot listen on {address} ({reason}: not an address of this machine)"
    return f"server.host / server.port: cannot listen on {address} ({reason})"


def check_config(args: argparse.Namespace) -> int:
    from .chain import order_warnings
    from .config_file import load
    from .masking import masked

    config = load(args.path)
    pm = _plugins(config)
    _tls(config)
    for warning in config.warnings() + [w for route in config.routes for w in order_warnings(pm, route)]:
        print(f"aiouploader: warning: {warning}", file=sys.stderr)
    print(json.dumps(masked(config.model_dump(mode="json")), indent=2))
    return 0


def plugins(args: argparse.Namespace) -> int:
    from .plugin_manager import make_plugin_manager

    pm = make_plugin_manager()
    for name, plugin in sorted(pm.list_name_plugin()):
        if plugin is None:
            continue
        dist = dict(pm.list_plugin_distinfo()).get(plugin)
        version = f"{dist.project_name} {dist.version}" if dist else "built-in"
        hooks = ", ".join(sorted(h.name.removeprefix("aiouploader_") for h in pm.get_hookcallers(plugin) or []))
        print(f"{name}  ({version})  hooks: {hooks}")
    return 0


def sign(args: argparse.Namespace) -> int:
    from . import auth
    from .config import ConfigError
    from .config_file import load
    from .errors import InvalidKey
    from .keys import check_key
    from .sizes import parse_size

    config = load(args.config)
    secret = config.auth.signing_keys.get(args.key_id)
    if secret is None:
        hint = "add it to [auth.signing_keys] or set AIOUPLOADER_AUTH__SIGNING_KEYS__<ID>, which makes a lowercase id"
        if args.key_id.lower() in config.auth.signing_keys:
            hint = f"ids set through the environment are lowercase: --key-id {args.key_id.lower()}"
        raise ConfigError(f"auth.signing_keys: no key {args.key_id!r} ({hint})")
    route = next((route for route in config.routes if route.path == args.route), None)
    if route is None:
        raise ConfigError(f"routes: no route {args.route}")
    try:
        if args.key is not None:
            check_key(args.key, route.prefix)
        else:
            check_key(args.prefix + "x", route.prefix)
    except InvalidKey as exc:
        option = "--key" if args.key is not None else "--prefix: no key under it is valid"
        raise ConfigError(f"{option}: {exc.message}") from None
    if args.expires_in <= 0:
        raise ConfigError(f"--expires-in: must be a positive number of seconds, not {args.expires_in}")
    try:
        max_size = None if args.max_size is None else parse_size(args.max_size)
    except ValueError as exc:
        raise ConfigError(f"--max-size: {exc}") from None
    url = auth.signed_url(
        args.base_url,
        secret,
        args.key_id,
        method=args.method,
        route=args.route,
        expires_in=args.expires_in,
        key=args.key,
        prefix=args.prefix,
        max_size=max_size,
        content_type=args.content_type,
    )
    print(url)
    return 0


def hash_token(args: argparse.Namespace) -> int:
    from . import auth

    print(auth.hash_token(args.token))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _command(_parser().parse_args(argv))
    except KeyboardInterrupt:  # Ctrl-C before the server listens (once it listens, Ctrl-C drains)
        return 130


def _command(args: argparse.Namespace) -> int:
    """Run the command; what stops it is one line on stderr and exit status 2."""
    from . import crt, frozen_lists, tls

    crt.keep_from_botocore()
    frozen_lists.keep_extension_out()
    tls.defer_aiohttp_certificates()

    from .config import ConfigError
    from .plugin_manager import PluginLoadError

    command = {
        "serve": serve,
        "check-config": check_config,
        "plugins": plugins,
        "sign": sign,
        "hash-token": hash_token,
    }[args.command]
    try:
        return command(args)
    except PluginLoadError as exc:
        print(f"aiouploader: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"aiouploader: invalid config: {exc}", file=sys.stderr)
        return 2
