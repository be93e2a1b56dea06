"""CPU time, disk writes and peak memory of process trees, and CPU time of the whole machine, read from ``/proc``."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from .errors import BenchError

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, int]:
    """``(ppid, user+sys ticks of the process and its waited-for children)``."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17
    return int(fields[1]), sum(int(v) for v in fields[11:15])


def _tree(root: int) -> tuple[list[int], dict[int, int]]:
    """``root`` and every live descendant, and the CPU ticks of every process on the machine."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                parents[int(name)], ticks[int(name)] = _stat(int(name))
            except (OSError, IndexError, ValueError):
                continue
    if root not in ticks:
        raise BenchError(f"process {root} is gone")
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return tree, ticks


def tree_cpu_seconds(root: int) -> float:
    """User+system CPU seconds of ``root`` and every live descendant (threads included)."""
    tree, ticks = _tree(root)
    return sum(ticks.get(pid, 0) for pid in tree) / CLK_TCK


def write_bytes(io: str) -> int:
    """``write_bytes`` of a ``/proc/PID/io`` text: what the process had written to block storage (the page cache
    counts it when a page becomes dirty; a tmpfs file is never counted)."""
    for line in io.splitlines():
        name, _, value = line.partition(":")
        if name == "write_bytes":
            return int(value)
    raise BenchError(f"no write_bytes in /proc/PID/io: {io[:200]!r}")


def tree_disk_writes(root: int) -> int:
    """Bytes ``root`` and every live descendant wrote to disk (threads and waited-for children included)."""
    total = 0
    for pid in _tree(root)[0]:
        try:
            with open(f"/proc/{pid}/io") as file:
                total += write_bytes(file.read())
        except FileNotFoundError:
            continue  # gone meanwhile: its parent counts it once it is waited for
    return total


def machine_busy_seconds() -> float:
    """User+nice+system CPU seconds of the whole machine, all CPUs (from /proc/stat)."""
    with open("/proc/stat") as file:
        fields = file.readline().split()
    return sum(int(v) for v in fields[1:4]) / CLK_TCK


@dataclass
class Snapshot:
    """CPU counters at one moment: the target's, the S3 server's, the bench's own tree, the machine's; and the bytes
    the target wrote to disk."""

    time: float
    target: float
    s3: float
    bench: float
    machine: float
    disk: int

    @classmethod
    def take(cls, target_pid: int, s3_pid: int) -> Snapshot:
        return cls(
            time.perf_counter(),
            tree_cpu_seconds(target_pid),
            tree_cpu_seconds(s3_pid),
            tree_cpu_seconds(os.getpid()),
            machine_busy_seconds(),
            tree_disk_writes(target_pid),
        )

    def until(self, later: Snapshot) -> dict[str, float]:
        """Seconds of wall time, of CPU per party, the load (in CPUs) of processes not the bench's, and the bytes the
        target wrote to disk."""
        wall = later.time - self.time
        others = (later.machine - self.machine) - (later.bench - self.bench)
        return {
            "wall": wall,
            "target": later.target - self.target,
            "s3": later.s3 - self.s3,
            "all": later.machine - self.machine,
            "others": max(0.0, others) / wall if wall > 0 else 0.0,
            "disk": later.disk - self.disk,
        }


def _status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # /proc's kB are KiB
    raise BenchError(f"no {field} for process {pid}")


def peak_rss(pid: int) -> int:
    """VmHWM of ``pid`` in bytes."""
    return _status(pid, "VmHWM")


def current_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    return _status(pid, "VmRSS")
