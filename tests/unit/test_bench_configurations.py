"""The bench's aiouploader configurations as config files aiouploader accepts, what the report says of (j), (k) and
(l), and the disk writes it reads from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from aiouploader.config import Config, validate
from bench.cli import DISK_BASE, parse_args
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
from bench.procfs import tree_disk_writes, write_bytes
from bench.report import notes, summary_rows
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


def test_j_k_l_and_m_are_in_the_default_set_and_the_quick_run() -> None:
    for config in "jklm":
        assert config in parse_args([]).only and config in parse_args(["--quick"]).only


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


def test_k_is_the_route_of_b_made_resumable() -> None:
    b, k = config_of("b"), config_of("k")
    assert not b.routes[0].resumable and k.routes[0].resumable
    assert k.routes[0].model_dump(exclude={"resumable"}) == b.routes[0].model_dump(exclude={"resumable"})
    assert k.s3 == b.s3 and k.upload == b.upload and k.s3_api is None


def test_a_set_reaches_the_resumable_configuration_too() -> None:
    assert config_of("k", "s3.content_md5=true").s3.content_md5


def test_write_bytes_is_read_from_proc_pid_io() -> None:
    io = (
        "rchar: 6976\nwchar: 4096\nsyscr: 10\nsyscw: 1\n"
        "read_bytes: 0\nwrite_bytes: 8392704\ncancelled_write_bytes: 4096\n"
    )
    assert write_bytes(io) == 8392704
    assert isinstance(write_bytes(Path(f"/proc/{os.getpid()}/io").read_text()), int)


WRITE_IN_A_CHILD = """
import subprocess, sys
subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'wb').write(bytes(4 << 20))", sys.argv[1]])
print(flush=True)
sys.stdin.readline()
"""
"""A process whose child writes 4 MiB to the file named by its argument, then waits for a line on stdin."""


def test_the_disk_writes_of_a_process_tree_count_a_childs_file_on_disk() -> None:
    with tempfile.TemporaryDirectory(dir=DISK_BASE) as disk:  # where the bench puts its TMPDIR: a disk, not tmpfs
        argv = [sys.executable, "-c", WRITE_IN_A_CHILD, f"{disk}/file"]
        parent = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            assert parent.stdout is not None and parent.stdout.readline() == b"\n"
            assert tree_disk_writes(parent.pid) >= 4 << 20
        finally:
            parent.communicate(b"\n", timeout=30)


def test_the_report_has_the_disk_writes_of_each_configuration() -> None:
    res = Results()
    res.singles["k"][1] = Single(1.0, 100.0, 6.0, 0, 7.0, 20.0, 0.0, None, 4.0, 0.0)
    res.singles["l"][1] = Single(1.0, 100.0, 6.0, 0, 7.0, 20.0, 0.0, None, 4.0, 1024.0)
    header, rows = summary_rows(parse_args(["--only", "k,l"]), res)
    column = header.index("disk writes MiB/GiB")
    assert [row[column] for row in rows] == ["0", "1024"]


def test_the_report_names_the_tus_client_beside_its_cpu() -> None:
    res = Results()
    res.singles["k"][1] = Single(1.0, 100.0, 6.0, 0, 7.0, 20.0, 0.0, None, 3.0, 0.0)
    lines = notes(parse_args(["--only", "k"]), res)
    assert (
        "(k) the client's own CPU (tus-js-client, not in the server's CPU s/GiB but in all processes'): "
        "3.00 s/GiB (median over rounds)." in lines
    )
