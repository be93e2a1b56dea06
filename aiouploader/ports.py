"""Loopback ports for servers run as subprocesses: a free one to give them, and waiting until one listens.

Used by the test fixtures (:mod:`aiouploader.testing`) and the benchmark; it imports nothing beyond the
standard library, so a program can use it without pytest.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

LOWEST = 10000
"""Ports are handed out from here up to the kernel's ephemeral range."""

_given: deque[int] = deque(maxlen=256)
"""Ports this process handed out lately, which their servers may not have bound yet."""


def _ephemeral_start() -> int:
    """The lowest port the kernel picks on its own (for ``bind(0)`` and outgoing connections)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def _candidates() -> range:
    """The ports this process may hand out: below the ephemeral range, where no socket gets one unasked, and under
    pytest-xdist only its worker's slice of them, so that two workers never hand out one port at the same time."""
    top = _ephemeral_start()
    worker = os.environ.get("PYTEST_XDIST_WORKER", "").removeprefix("gw")
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not (worker.isdigit() and workers.isdigit() and int(workers) > 0):
        return range(LOWEST, top)
    width = (top - LOWEST) // int(workers)
    start = LOWEST + int(worker) % int(workers) * width
    return range(start, start + width)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment, for a server started next.

    Choosing a port and then starting a server on it leaves a moment in
    which another process could take the port. So the port comes from below
    the kernel's ephemeral range, which it never hands out on its own; and
    under pytest-xdist from a slice per worker. Where the range is unknown
    (not Linux), the kernel picks one.
    """
    candidates = _candidates()
    for port in random.sample(candidates, min(100, len(candidates))):
        if port not in _given and _bindable(port):
            _given.append(port)
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        return int(port)


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str, timeout: float = 30.0) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; RuntimeError when ``process`` exits or time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:g}s")
