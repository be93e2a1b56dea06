"""Every process the bench starts: started in the workspace, stopped at the end, waited for until they serve."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import time
import traceback
import urllib.request
from contextlib import suppress
from pathlib import Path

from .errors import BenchError


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the bench dies without cleaning up (Linux only)."""
    with suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Processes:
    """Every process the bench starts, so that all of them are stopped at the end."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work = work
        self.env = env
        self.live: list[subprocess.Popen[bytes]] = []

    def start(
        self, argv: list[str], *, log: Path | None = None, env: dict[str, str] | None = None, pipes: bool = False
    ) -> subprocess.Popen[bytes]:
        stderr = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.work,
                env={**self.env, **(env or {})},
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stderr=stderr,
                bufsize=0,
                preexec_fn=_die_with_parent,
            )
        finally:
            if log:
                stderr.close()  # type: ignore[union-attr]
        self.live.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe:
                pipe.close()
        if proc in self.live:
            self.live.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.live)):
            try:
                self.stop(proc)
            except Exception:
                traceback.print_exc()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_for_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with status {proc.returncode}")
        try:
            with _NO_PROXY.open(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.05)
    raise BenchError(f"{what} did not answer {url} within {timeout:g}s ({last})")


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    | " + line for line in text)
