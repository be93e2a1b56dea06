"""A bounded load generator for aiouploader: concurrent clients, mixed sizes, some hanging up mid-body.

Run it as its own process, so that the server under test shares nothing with it:

    python -m tests.loadgen --url http://127.0.0.1:8080/u --clients 32 --seconds 20 --count 400

It stops at ``--count`` requests or after ``--seconds``, whichever comes
first, and prints one JSON summary line: requests by status, the 5xx ones
with their error codes, client disconnects, transport errors and the bytes
sent. A 201 whose ``size`` or ``checksums.sha256`` differs from what was
sent counts as ``mismatches``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

KiB = 1024
MiB = 1024**2
SIZES = [  # (weight, smallest, largest)
    (60, 0, 256 * KiB),
    (30, 1 * MiB, 5 * MiB + 1),
    (10, 6 * MiB, 12 * MiB),
]


@dataclass
class Summary:
    requests: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    server_errors: list[str] = field(default_factory=list)
    disconnects: int = 0
    transport_errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "statuses": dict(self.statuses),
            "server_errors": self.server_errors[:20],
            "disconnects": self.disconnects,
            "transport_errors": self.transport_errors[:20],
            "mismatches": self.mismatches,
            "bytes_sent": self.bytes_sent,
            "seconds": round(self.seconds, 2),
        }


def pick_size(rng: random.Random) -> int:
    weights = [w for w, _, _ in SIZES]
    _, low, high = rng.choices(SIZES, weights)[0]
    return rng.randrange(low, high)


async def put(session: aiohttp.ClientSession, url: str, body: bytes, summary: Summary) -> None:
    try:
        async with session.put(url, data=body) as response:
            summary.statuses[str(response.status)] += 1
            result = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError) as exc:
        summary.transport_errors.append(f"{type(exc).__name__}: {exc}")
        return
    if response.status >= 500:
        summary.server_errors.append(f"{response.status} {result.get('error', {}).get('code')}")
    elif response.status == 201:
        sent = hashlib.sha256(body).hexdigest()
        if result.get("size") != len(body) or result.get("checksums", {}).get("sha256", sent) != sent:
            summary.mismatches += 1
    summary.bytes_sent += len(body)


async def hang_up(url: str, body: bytes, rng: random.Random, summary: Summary) -> None:
    """Send the head and part of the body, then close the connection (a reset when unlucky)."""
    parts = urlsplit(url)
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            f"PUT {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        )
        cut = rng.randrange(0, max(1, len(body)))
        writer.write(body[:cut])
        await writer.drain()
        await asyncio.sleep(rng.uniform(0, 0.2))
        summary.disconnects += 1
        summary.bytes_sent += cut
    except ConnectionError as exc:
        summary.transport_errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        writer.transport.abort()
        writer.close()


async def run(url: str, clients: int, seconds: float, count: int, disconnect_ratio: float, seed: int) -> Summary:
    summary = Summary()
    pool = os.urandom(12 * MiB)
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    issued = 0

    async def client(number: int) -> None:
        nonlocal issued
        rng = random.Random(seed * 1000 + number)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while time.monotonic() < deadline and issued < count:
                issued += 1
                summary.requests += 1
                size = pick_size(rng)
                start = rng.randrange(0, len(pool) - size + 1)
                body = pool[start : start + size]
                key = f"{url}/load/{number}-{issued}"
                if rng.random() < disconnect_ratio:
                    await hang_up(key, body, rng, summary)
                else:
                    await put(session, key, body, summary)

    await asyncio.gather(*(client(n) for n in range(clients)))
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the route's URL, e.g. http://127.0.0.1:8080/u")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0, help="stop issuing requests after this long")
    parser.add_argument("--count", type=int, default=1000, help="stop after this many requests")
    parser.add_argument("--disconnect-ratio", type=float, default=0.1, help="share of clients that hang up mid-body")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = asyncio.run(
        run(args.url.rstrip("/"), args.clients, args.seconds, args.count, args.disconnect_ratio, args.seed)
    )
    print(json.dumps(summary.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
