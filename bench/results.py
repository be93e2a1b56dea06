"""What the measurements found, kept for the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from .configurations import CONFIGS


@dataclass
class Single:
    """One single upload of --size: its speed, CPU per GiB (the target's, the S3 server's, the machine's), peak RSS,
    for a server the RSS after start-up, before any upload, and the disk writes."""

    seconds: float
    mibps: float
    cpu_per_gib: float
    rss: int
    s3_cpu_per_gib: float
    all_cpu_per_gib: float
    others: float
    idle_rss: int | None = None
    client_cpu_per_gib: float | None = None
    """CPU per GiB of the client process, where the bench measures it ((j)'s, (k)'s, (l)'s); never the server's."""
    disk_mib_per_gib: float | None = None
    """MiB the server (the process measured) wrote to disk per GiB uploaded."""


@dataclass
class Results:
    singles: dict[str, dict[int, Single]] = field(default_factory=lambda: {k: {} for k in CONFIGS})
    """Per configuration, per round."""
    concurrent: dict[str, dict[str, float]] = field(default_factory=dict)
    small: dict[str, dict[str, float]] = field(default_factory=dict)
    flat: dict[str, dict[int, int]] = field(default_factory=dict)
    """Per configuration, the peak RSS per --flat size."""
    failures: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=lambda: {k: [] for k in CONFIGS})
