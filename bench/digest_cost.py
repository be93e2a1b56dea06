"""CPU seconds per GiB of each digest the S3 writer can compute per part, in this process.

    python bench/digest_cost.py [--part-size 8MiB] [--total 2GiB]

Each algorithm digests ``--total`` bytes in parts of ``--part-size`` (as
aiouploader.checksums.digest does for one part), timed with process_time().
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from aiouploader.checksums import HASHES, digest
from aiouploader.sizes import parse_size

ALGORITHMS = ("md5", "crc32c", "crc64nvme", "crc32", "sha256")


def seconds_per_gib(algorithm: str, part: bytes, total: int) -> float:
    parts = max(1, total // len(part))
    started = time.process_time()
    for _ in range(parts):
        digest(algorithm, part)
    return (time.process_time() - started) / (parts * len(part) / 1024**3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part-size", type=parse_size, default=8 * 1024**2)
    parser.add_argument("--total", type=parse_size, default=2 * 1024**3)
    args = parser.parse_args()
    part = os.urandom(args.part_size)
    print(f"{platform.processor() or platform.machine()}, Python {platform.python_version()}")
    for algorithm in ALGORITHMS:
        if algorithm not in HASHES:
            print(f"{algorithm:10} not available (install awscrt)")
            continue
        print(f"{algorithm:10} {seconds_per_gib(algorithm, part, args.total):.3f} CPU s/GiB")


if __name__ == "__main__":
    main()
