"""The configurations (a) to (m) that the bench compares, and the config file of each aiouploader server."""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Callable
from typing import Any

KiB, MiB, GiB = 1024, 1024**2, 1024**3
PART_SIZE = 8 * MiB
PARTS_IN_FLIGHT = 3
"""aiouploader's defaults; --part-size and --parts-in-flight change them for every configuration."""
ACCESS_KEY = "aiouploader-bench"
SECRET_KEY = "aiouploader-bench-secret-key"
BUCKET = "bench"
ROUTE = "/uploads"
S3_API_BUCKET = "bench-s3api"
S3_API_ACCESS_KEY = "aiouploader-bench-s3api"
S3_API_SECRET_KEY = "aiouploader-bench-s3api-secret-key"
"""(j)'s route as a bucket of aiouploader's S3 API, and the credential its client signs with there."""

CONFIGS = {
    "a": "ceiling: aioboto3 multipart from memory",
    "b": "aiouploader: checksum",
    "c": "aiouploader: size_limit, checksum, virus_scan (stub), encryption",
    "d": "baseline: Starlette/uvicorn → queue → boto3 upload_fileobj",
    "e": "aiouploader: size_limit",
    "f": "aiouploader: virus_scan (stub)",
    "g": "aiouploader: encryption",
    "h": "aiouploader: checksum, s3.content_md5 = true",
    "i": "baseline as usually written: (d) with boto3's default client",
    "j": "aiouploader through its S3 API: checksum, boto3 upload_file",
    "k": "aiouploader resumable (tus): checksum, tus-js-client",
    "l": "tus Node server: @tus/server with @tus/s3-store, tus-js-client",
    "m": "floor: (b)'s job without a framework: asyncio reads → SHA-256, CRC32C → aioboto3 multipart",
}
CHAINS = {
    "b": ["checksum"],
    "c": ["size_limit", "checksum", "virus_scan", "encryption"],
    "e": ["size_limit"],
    "f": ["virus_scan"],
    "g": ["encryption"],
    "h": ["checksum"],
    "j": ["checksum"],
    "k": ["checksum"],
}
"""The route's plugins of the configurations that are aiouploader servers."""
SETTINGS: dict[str, dict[str, dict[str, Any]]] = {"h": {"s3": {"content_md5": True}}}
S3_API = {"j"}
"""The configurations uploaded through aiouploader's S3 API rather than its HTTP API."""
FLOOR = "m"
"""The configuration that does (b)'s job and nothing else, without a framework: where the machine's limit is."""
TUS = {"k", "l"}
"""The configurations uploaded with tus (resumable uploads) by tus-js-client, in a process of its own."""
TUS_CHUNK_SIZE = 8 * MiB
"""Bytes per PATCH of the tus client: one part of the default part size."""
ROUTE_SETTINGS: dict[str, dict[str, Any]] = {"k": {"resumable": True}}
"""Settings of the route, beyond its chain, per configuration."""

Setting = tuple[str, str, Any]
"""``(section, key, value)`` of one --set."""


def toml_value(value: Any) -> str:
    """A TOML literal for a str, bool, int, float or list of them (JSON's string escapes are TOML's)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def parse_setting(text: str) -> Setting:
    """``section.key=TOML value`` for --set, e.g. ``s3.content_md5=true``."""
    name, sep, raw = text.partition("=")
    section, dot, key = name.strip().rpartition(".")
    if not (sep and dot and section and key):
        raise argparse.ArgumentTypeError(f"expected SECTION.KEY=VALUE, e.g. s3.content_md5=true, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word: a string
    return section, key, value


def aiouploader_toml(
    config: str,
    *,
    port: int,
    s3_url: str,
    part_size: int,
    parts_in_flight: int,
    settings: list[Setting],
    recipient: Callable[[], str],
    s3_api_port: int = 0,
) -> str:
    """The config file of configuration ``config``'s server: one route with its chain, then the --set settings;
    for (j) the route is a bucket of the S3 API on ``s3_api_port`` too."""
    sections: dict[str, dict[str, Any]] = {
        "server": {"host": "127.0.0.1", "port": port, "log_level": "warning"},
        "s3": {"endpoint_url": s3_url, "part_size": part_size, "parts_in_flight": parts_in_flight},
    }
    if "virus_scan" in CHAINS[config]:
        sections["plugins.virus_scan"] = {"backend": "stub"}
    if "encryption" in CHAINS[config]:
        sections["plugins.encryption"] = {"recipients": [recipient()]}
    for name, values in SETTINGS.get(config, {}).items():
        sections.setdefault(name, {}).update(values)
    for name, key, value in settings:
        sections.setdefault(name, {})[key] = value
    if config in S3_API:
        sections.setdefault("s3_api", {}).update(host="127.0.0.1", port=s3_api_port)
        sections["[s3_api.credentials]"] = {"access_key_id": S3_API_ACCESS_KEY, "secret_access_key": S3_API_SECRET_KEY}
    route = {"path": ROUTE, "bucket": BUCKET, "plugins": CHAINS[config], **ROUTE_SETTINGS.get(config, {})}
    sections["[routes]"] = route
    if config in S3_API:
        sections["[routes]"]["s3_api_bucket"] = S3_API_BUCKET
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
        lines.append("")
    return "\n".join(lines)
