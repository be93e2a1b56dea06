"""The bench's aiouploader configurations as config files aiouploader accepts, and what the report says of (j)."""

from __future__ import annotations

import tomllib

from aiouploader.config import Config, validate
from bench.cli import parse_args
from bench.configurations import (
    CHAINS,
    PART_SIZE,
    PARTS_IN_FLIGHT,
    S3_API_ACCESS_KEY,
    S3_API_BUCKET,
    S3_API_SECRET_KEY,
    aiouploader_toml,
    parse_setting,
)
from bench.report import notes
from bench.results import Results, Single


def config_of(config: str, *settings: str) -> Config:
    text = aiouploader_toml(
        config,
        port=8080,
        s3_url="http://127.0.0.1:9000",
        part_size=PART_SIZE,
        parts_in_flight=PARTS_IN_FLIGHT,
        settings=[parse_setting(s) for s in settings],
        recipient=lambda: "unused",
        s3_api_port=8081,
    )
    return validate(tomllib.loads(text))


def test_every_server_configuration_is_a_valid_config() -> None:
    for config in set(CHAINS) - {"c", "g"}:  # (c) and (g) encrypt, to a recipient the bench makes
        assert config_of(config).routes[0].plugins == CHAINS[config]


def test_j_is_the_route_of_b_as_a_bucket_of_the_s3_api() -> None:
    b, j = config_of("b"), config_of("j")
    assert b.s3_api is None and b.routes[0].s3_api_bucket is None
    assert j.s3_api is not None and (j.s3_api.host, j.s3_api.port) == ("127.0.0.1", 8081)
    [credential] = j.s3_api.credentials
    assert (credential.access_key_id, credential.secret_access_key) == (S3_API_ACCESS_KEY, S3_API_SECRET_KEY)
    assert j.routes[0].s3_api_bucket == S3_API_BUCKET
    assert j.routes[0].model_dump(exclude={"s3_api_bucket"}) == b.routes[0].model_dump(exclude={"s3_api_bucket"})
    assert j.s3 == b.s3 and j.upload == b.upload


def test_a_set_reaches_the_s3_api_configuration_too() -> None:
    assert config_of("j", "s3.content_md5=true").s3.content_md5


def test_j_is_in_the_default_set_and_the_quick_run() -> None:
    assert "j" in parse_args([]).only and "j" in parse_args(["--quick"]).only


def test_the_report_gives_the_clients_cpu_apart_from_the_servers() -> None:
    res = Results()
    for round_, client in enumerate([3.0, 5.0, 4.0], start=1):
        res.singles["j"][round_] = Single(1.0, 100.0, 6.0, 0, 7.0, 20.0, 0.0, None, client)
    res.singles["b"][1] = Single(1.0, 100.0, 5.0, 0, 7.0, 15.0, 0.0, None)
    lines = notes(parse_args(["--only", "b,j"]), res)
    clients = [line for line in lines if "client's own CPU" in line]
    assert clients == [
        "(j) the client's own CPU (boto3's upload_file, not in the server's CPU s/GiB but in all processes'): "
        "4.00 s/GiB (median over rounds)."
    ]
