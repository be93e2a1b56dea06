"""botocore without awscrt in the server: botocore imports awscrt (about 6 MiB) whenever it is installed.

botocore uses awscrt for its request signer and for the checksums it computes
itself. The S3 client here is given every checksum it sends (CRC64NVME from
:mod:`aiouploader.checksums`, which imports awscrt at the first one), so
botocore's Python signer, the one of an install without awscrt, does the rest.
``BOTO_DISABLE_CRT`` would not help: botocore imports awscrt before reading it.
"""

from __future__ import annotations

import sys


def keep_from_botocore() -> None:
    """Import botocore as if awscrt were not installed, unless botocore or awscrt is already imported."""
    if "botocore.compat" in sys.modules or "awscrt" in sys.modules:
        return
    sys.modules["awscrt"] = None  # type: ignore[assignment]  # `import awscrt.auth` raises ImportError
    try:
        import botocore.compat  # noqa: F401
    finally:
        del sys.modules["awscrt"]
