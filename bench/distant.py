"""One upload to an S3 server that is far away: MiB/s and the server's peak RSS.

``rclone serve s3`` on tmpfs, behind a relay on loopback that passes every
chunk on ``--latency`` seconds after it came, each way, without holding back
the chunks behind it (a round trip of twice that, and no bandwidth limit);
``aiouploader serve`` with one ``["checksum"]`` route sends to the relay;
``curl -T`` uploads 4 KiB (a warm-up), then the measured file, from ``/dev/shm``. Run it from the tree to measure:

    python bench/distant.py --size 256MiB --latency 0.010
    python bench/distant.py --size 256MiB --latency 0        # no relay
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiouploader.ports import free_port, wait_for_port
from aiouploader.sizes import parse_size
from aiouploader.testing import ACCESS_KEY, SECRET_KEY, start_rclone

READ_SIZE = 256 * 1024


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, latency: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(256)

    async def take() -> None:
        while chunk := await reader.read(READ_SIZE):
            await queue.put((loop.time() + latency, chunk))
        await queue.put((0.0, b""))

    taking = asyncio.create_task(take())
    try:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - loop.time()))
            writer.write(chunk)
            await writer.drain()
    finally:
        taking.cancel()
        writer.close()


def start_relay(listen: int, target: int, latency: float) -> Callable[[], None]:
    """Relay ``listen`` to ``target`` in a thread of its own; returns what stops it."""
    ready = threading.Event()
    running: dict[str, Any] = {}

    async def accept(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):  # cancelled: the relay stops
            await asyncio.gather(
                _pump(client_reader, server_writer, latency), _pump(server_reader, client_writer, latency)
            )

    async def serve() -> None:
        running["loop"], running["stop"] = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(accept, "127.0.0.1", listen)
        ready.set()
        async with server:
            await running["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)

    def stop() -> None:
        running["loop"].call_soon_threadsafe(running["stop"].set)
        thread.join(10)

    return stop


def peak_rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def measure(size: int, latency: float, workdir: Path) -> tuple[float, float]:
    s3 = start_rclone()
    (s3.root or workdir).joinpath("incoming").mkdir()
    s3_port = int(s3.endpoint_url.rsplit(":", 1)[1])
    relay_port, port = free_port(), free_port()
    stop_relay = start_relay(relay_port, s3_port, latency) if latency else None
    endpoint = f"http://127.0.0.1:{relay_port}" if latency else s3.endpoint_url
    config = workdir / "config.toml"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n[s3]\nendpoint_url = "{endpoint}"\n'
        '[[routes]]\npath = "/uploads"\nbucket = "incoming"\nplugins = ["checksum"]\n'
    )
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    server = subprocess.Popen(
        [sys.executable, "-m", "aiouploader", "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    body, warm = workdir / "body", workdir / "warm"
    try:
        wait_for_port(port, server, "aiouploader")
        warm.write_bytes(os.urandom(4096))
        with body.open("wb") as out:
            for _ in range(size // 2**20):
                out.write(os.urandom(2**20))
        url = f"http://127.0.0.1:{port}/uploads/"
        curl = ["curl", "-sf", "-o", "/dev/null", "--max-time", "600", "-T"]
        subprocess.run([*curl, str(warm), url + "warm"], check=False)
        started = time.perf_counter()
        subprocess.run([*curl, str(body), url + "big"], check=True)
        took = time.perf_counter() - started
        return size / 2**20 / took, peak_rss(server.pid)
    finally:
        body.unlink(missing_ok=True)
        server.terminate()
        server.wait(30)
        if stop_relay is not None:
            stop_relay()
        s3.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256MiB", help="the upload's size (default 256MiB)")
    parser.add_argument("--latency", type=float, default=0.010, help="seconds added each way (default 0.010)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir="/dev/shm") as workdir:
        speed, rss = measure(parse_size(args.size), args.latency, Path(workdir))
    print(f"{args.size} round trip +{2000 * args.latency:.0f} ms: {speed:.1f} MiB/s, peak RSS {rss:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
