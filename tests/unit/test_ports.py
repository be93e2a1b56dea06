"""Ports for servers started next: below the kernel's ephemeral range, and a slice of it per pytest-xdist worker."""

from __future__ import annotations

import socket
from collections import deque

import pytest

from aiouploader import ports
from aiouploader.ports import free_port

pytestmark = pytest.mark.skipif(
    ports._ephemeral_start() <= ports.LOWEST, reason="no ephemeral port range to stay below"
)


def _listen(port: int) -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    return monkeypatch


def test_a_port_is_below_the_range_the_kernel_hands_out_and_a_server_can_listen_on_it(
    worker: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    assert ports.LOWEST <= port < ports._ephemeral_start()
    _listen(port).close()


def test_a_port_handed_out_is_not_handed_out_again_before_its_server_binds_it(
    worker: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ports, "_candidates", lambda: range(ports.LOWEST, ports.LOWEST + 500))
    given = [free_port() for _ in range(200)]
    assert len(set(given)) == len(given)


def test_a_port_something_listens_on_is_not_handed_out(
    worker: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = _listen(free_port())
    try:
        port = taken.getsockname()[1]
        monkeypatch.setattr(ports, "_candidates", lambda: range(port, port + 2))
        for _ in range(20):
            monkeypatch.setattr(ports, "_given", deque(maxlen=256))
            assert free_port() != port
    finally:
        taken.close()


def test_xdist_workers_hand_out_ports_from_slices_that_do_not_overlap(worker: pytest.MonkeyPatch) -> None:
    worker.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    slices = []
    for name in ("gw0", "gw1"):
        worker.setenv("PYTEST_XDIST_WORKER", name)
        candidates = ports._candidates()
        given = {free_port() for _ in range(50)}
        assert given <= set(candidates)
        slices.append(candidates)
    assert not set(slices[0]) & set(slices[1])
    assert slices[0].start == ports.LOWEST and slices[1].stop <= ports._ephemeral_start()


def test_without_a_known_range_the_kernel_picks_the_port(
    worker: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    ephemeral = ports._ephemeral_start()
    monkeypatch.setattr(ports, "_ephemeral_start", lambda: 0)
    port = free_port()
    assert port >= ephemeral
    _listen(port).close()
