"""The client of configuration (j): boto3's ``upload_file`` to aiouploader's S3 API, in a process of its own.

Started by ``bench/run.py`` once per measurement, before it is timed, so that neither its start-up nor its CPU
counts as the server's; the bench reads this process's CPU from ``/proc`` apart. It speaks JSON lines like
``bench/direct.py``: one command on stdin, one answer on stdout.

    {"op": "upload", "path": "/dev/shm/.../payload", "keys": ["k1", ...]}   upload_file of the file at each key,
                                                                              all at once (a thread each)
    {"op": "quit"}

``upload_file`` runs with boto3's defaults, as ``aws s3 cp`` does: above 8 MiB a multipart upload of 8 MiB parts,
up to 10 at once, each part's SHA-256 signed and a CRC32 sent with it. The one client's connection pool has room
for every upload's 10 parts (``--uploads``: at most that many at once).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--uploads", type=int, required=True, help="the most uploads at once")
    args = parser.parse_args()
    transfer = TransferConfig()
    config = Config(
        s3={"addressing_style": "path"}, max_pool_connections=transfer.max_request_concurrency * args.uploads
    )
    s3 = boto3.client("s3", endpoint_url=args.endpoint, region_name="us-east-1", config=config)
    with ThreadPoolExecutor(args.uploads) as pool:
        for line in sys.stdin:
            command = json.loads(line)
            if command["op"] == "quit":
                return
            answer: dict[str, Any] = {"ok": True}
            try:
                started = time.perf_counter()
                if command["op"] != "upload":
                    raise ValueError(f"unknown op {command['op']!r}")
                jobs = [pool.submit(s3.upload_file, command["path"], args.bucket, key) for key in command["keys"]]
                for job in jobs:
                    job.result()
                answer["seconds"] = time.perf_counter() - started
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
