"""What a server holds at start-up: no module that its routes do not use, no botocore data its client does not read."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import botocore
import pytest

from aiouploader.s3.loading import SERVICES, only_services, s3_session, without_documentation
from aiouploader.testing import S3Server, free_port, wait_for_port

UNUSED_BY_DEFAULT = (
    "cryptography",
    "aiouploader.age",
    "aiouploader.builtin.encryption_stages",
    "aiouploader.clamd",
    "aiouploader.builtin.clamd_stage",
    "aioboto3",
    "boto3",
    "s3transfer",
)

SERVE = """
import asyncio, json, sys
from aiohttp import web
from aiouploader.app import make_app, server_options
from aiouploader.cli import DEV_CONFIG, _plugins
from aiouploader.config import validate
from aiouploader.runner import Runner

async def main():
    routes = [*DEV_CONFIG["routes"], {"path": "/c", "bucket": "other", "plugins": ["checksum"]}]
    config = validate({"routes": routes, "s3": {"endpoint_url": sys.argv[1], "orphan_ttl": 0}})
    runner = Runner(make_app(config, _plugins(config)), **server_options(config))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps(sorted(sys.modules)))
    await runner.cleanup()

asyncio.run(main())
"""


def test_the_default_routes_server_imports_no_encryption_scanner_client_or_boto3(moto_server: S3Server) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVE, moto_server.endpoint_url], capture_output=True, text=True, timeout=120, check=True
    )
    loaded = set(json.loads(out.stdout))
    assert "aiouploader.builtin.virus_scan" in loaded
    assert [name for name in UNUSED_BY_DEFAULT if name in loaded] == []


def test_the_s3_clients_botocore_data_keeps_only_what_it_reads() -> None:
    loader = s3_session().get_component("data_loader")
    endpoints = loader.load_data("endpoints")
    aws = next(p for p in endpoints["partitions"] if p["partition"] == "aws")
    assert "s3" in aws["services"] and set(aws["services"]) <= SERVICES
    assert aws["regions"] and aws["defaults"]
    model = loader.load_service_model("s3", "service-2")
    put = model["operations"]["PutObject"]
    assert put["documentation"] == "" and put["input"] == {"shape": "PutObjectRequest"}
    assert type(model["shapes"]) is dict


def test_the_endpoints_file_read_service_by_service_is_the_file_parsed_whole_and_cut() -> None:
    text = (Path(botocore.__file__).parent / "data" / "endpoints.json").read_text()
    whole = json.loads(text, object_pairs_hook=without_documentation)
    for partition in whole["partitions"]:
        partition["services"] = {name: s for name, s in partition["services"].items() if name in SERVICES}
    assert only_services(text) == whole
    assert json.dumps(only_services(text)) == json.dumps(whole)  # the same order too


def test_reading_endpoints_service_by_service_keeps_json_as_json() -> None:
    text = ' {"partitions" : [ {"services": {}, "a": [1, {"b": 2}]} ,\n{"services": {"ec2": {}, "s3": {}}}],"v":3}'
    assert only_services(text) == json.loads(text) | {
        "partitions": [{"services": {}, "a": [1, {"b": 2}]}, {"services": {"s3": {}}}]
    }


OFFLINE = (
    '[s3]\nendpoint_url = "http://127.0.0.1:9"\norphan_ttl = 0\n'
    '[[routes]]\npath = "/uploads"\nbucket = "incoming"\nplugins = ["checksum"]\n'
)


def serving(config: Path, *interpreter: str) -> subprocess.Popen[bytes]:
    """``aiouploader serve`` of ``config``, run with the ``interpreter``'s options, once it listens."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOUPLOADER_")}
    command = [sys.executable, *interpreter, "-m", "aiouploader", "serve", "--config", str(config)]
    process = subprocess.Popen(
        [*command, "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    try:
        wait_for_port(port, process, "aiouploader serve")
    except BaseException:
        stopped(process)
        raise
    return process


def stopped(process: subprocess.Popen[bytes]) -> bytes:
    """Stop a server from :func:`serving` (it drains); what it wrote to stderr."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=60)[1]


def modules_imported_by_serve(config: Path) -> set[str]:
    """Every module ``aiouploader serve`` imported until it listened (and drained), by ``-X importtime``."""
    lines = stopped(serving(config, "-X", "importtime")).decode(errors="replace").splitlines()
    return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}


@pytest.mark.skipif(importlib.util.find_spec("awscrt") is None, reason="awscrt is not installed")
def test_serve_keeps_awscrt_from_botocore_and_loads_no_s3_api_without_s3_api(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(OFFLINE)
    loaded = modules_imported_by_serve(config)
    assert {"botocore.compat", "aiobotocore.client", "aiouploader.app"} <= loaded
    assert [name for name in ("awscrt", "aiouploader.s3api.server") if name in loaded] == []


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc")
def test_serve_keeps_frozenlists_cplusplus_extension_out(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(OFFLINE)
    process = serving(config)
    try:
        maps = Path(f"/proc/{process.pid}/maps").read_text()
    finally:
        stopped(process)
    assert "/aiohttp/_http_parser" in maps
    assert "/frozenlist/_frozenlist" not in maps
