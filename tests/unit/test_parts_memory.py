"""The memory one upload holds: the block being read, and the writer's parts."""

from __future__ import annotations

import subprocess
import sys

from aiouploader.s3 import MAX_PARTS, upload_memory

MiB = 1024**2


def test_an_upload_of_unknown_length_holds_the_parts_in_flight_one_filling_and_a_block() -> None:
    assert upload_memory(8 * MiB, 4, MiB) == 8 * MiB * 5 + MiB


def test_a_short_upload_holds_no_more_than_itself_and_a_block() -> None:
    assert upload_memory(8 * MiB, 4, MiB, content_length=1000) == 1000 + MiB


def test_an_upload_beyond_ten_thousand_parts_holds_its_larger_parts() -> None:
    length = MAX_PARTS * 8 * MiB + 1  # needs 9MiB parts
    assert upload_memory(8 * MiB, 4, MiB, content_length=length) == 9 * MiB * 5 + MiB


def test_the_configuration_imports_before_the_s3_package() -> None:
    """config.py imports the part limits from aiouploader.s3, which imports the config only for types."""
    subprocess.run([sys.executable, "-c", "import aiouploader.config, aiouploader.s3"], check=True)
